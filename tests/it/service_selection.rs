//! Issue 24: one service never blocks the others. A service this binary cannot run is an error
//! located at that service; `--service` selects around it for validate, compile, run and
//! submit; `submit` without `--service` lists the runnable services; `explain` marks it. And the
//! users' comprehensive campaign (nine services) validates and compiles whole.

use crate::common;

fn write_recipe(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("r.yml");
    std::fs::write(
        &p,
        format!(
            r#"benchmark: {{name: selection}}
global: {{metrics_db: "{db}"}}
services:
  - service_name: files
    service_type: file_storage
    base_path: "{base}"
    file_sizes: {{"4KB": 1.0}}
    operation_mix: {{write: 0.5, read: 0.5}}
    client_count: 1
    requests_per_second: 0
    arrival: closed
    requests: 200
    duration: 60
  - service_name: faiss-hnsw
    service_type: vectordb
    backend: faiss
    index: hnsw
    operation_mix: {{insert: 0.5, search: 0.3, delete: 0.2}}
"#,
            db = dir.join("c.db").display(),
            base = dir.join("data").display(),
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    p
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn validate_and_explain_locate_the_service_and_select_around_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(dir.path());
    let r = r.to_str().unwrap();

    let o = common::bin().args(["validate", r]).output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("cannot remove vectors"), "{t}");
    assert!(t.contains("services[1].operation_mix"), "{t}");
    assert!(
        t.contains("`faiss-hnsw` cannot run with this binary"),
        "{t}"
    );
    assert!(t.contains("--service NAME (runnable: files)"), "{t}");

    let o = common::bin()
        .args(["validate", r, "--service", "files"])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("valid (2 services"), "{t}");
    assert!(
        t.contains("service `faiss-hnsw` is not validated for running"),
        "{t}"
    );

    let o = common::bin()
        .args(["validate", r, "--service", "faiss-hnsw"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = common::bin()
        .args(["validate", r, "--service", "nope"])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("no service `nope`"), "{t}");
    assert!(t.contains("services: files, faiss-hnsw"), "{t}");

    let o = common::bin()
        .args(["validate", r, "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["runnable"], serde_json::json!(["files"]));
    assert_eq!(v["diagnostics"][0]["cannot_run"], true);
    assert_eq!(v["diagnostics"][0]["path"], "services[1].operation_mix");

    let o = common::bin().args(["explain", r]).output().unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("CANNOT RUN with this binary: Faiss HNSW"), "{t}");
    assert!(t.contains("1 of 2 services cannot run"), "{t}");
    let o = common::bin()
        .args(["explain", r, "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["services"][0].get("cannot_run").is_none());
    assert!(v["services"][1]["cannot_run"]
        .as_str()
        .unwrap()
        .contains("cannot remove vectors"));
}

#[test]
fn compile_run_and_submit_select_around_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(dir.path());
    let r = r.to_str().unwrap();
    let out = dir.path().join("camp");

    let o = common::bin()
        .args(["compile", r, "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(t.contains("runnable: files"), "{t}");
    assert!(!out.join("scripts").exists());

    let o = common::bin()
        .args([
            "compile",
            r,
            "--out",
            out.to_str().unwrap(),
            "--service",
            "files",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let scripts: Vec<_> = std::fs::read_dir(out.join("scripts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(scripts, ["files.sbatch"]);

    let o = common::bin()
        .args(["submit", r, "--campaigns-dir"])
        .arg(dir.path().join("campaigns"))
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{t}");
    assert!(
        t.contains("--service NAME (runnable: files), e.g. --service files"),
        "{t}"
    );
    assert!(!dir.path().join("campaigns").exists(), "nothing submitted");
    let o = common::bin()
        .args([
            "submit",
            r,
            "--service",
            "files",
            "--dry-run",
            "--campaigns-dir",
        ])
        .arg(dir.path().join("campaigns"))
        .output()
        .unwrap();
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(t.contains("scripts/files.sbatch"), "{t}");
    assert!(!t.contains("faiss-hnsw.sbatch"), "{t}");

    let o = common::bin()
        .args(["run", r, "--json", "--no-progress"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = common::bin()
        .args(["run", r, "--service", "files", "--json", "--no-progress"])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    common::assert_run_ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 1);
    assert_eq!(v["runs"][0]["service"], "files");
    assert_eq!(v["runs"][0]["requests"], 200);
}

/// The users' comprehensive campaign — Ollama, vLLM, Triton resnet50, ChromaDB, Faiss, Weaviate,
/// PostgreSQL, MinIO, file storage, as written — validates with 0 errors and compiles to nine
/// scripts with the default binary (no cargo feature).
#[test]
fn the_comprehensive_campaign_validates_and_compiles_to_nine_scripts() {
    let r = "recipes/comprehensive-all.yml";
    let o = common::bin()
        .args(["validate", r, "--json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["services"], 9);
    assert!(v["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["severity"] == "warning"));
    let l = factorybench::recipe::load(std::path::Path::new(r)).unwrap();
    let kinds: Vec<String> = l
        .plan
        .services
        .iter()
        .map(|s| {
            serde_json::to_value(&s.workload).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "llm",
            "llm",
            "tensor",
            "vectordb",
            "vectordb",
            "vectordb",
            "database",
            "s3",
            "file_storage"
        ]
    );

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("camp");
    let o = common::bin()
        .args(["compile", r, "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mut scripts: Vec<_> = std::fs::read_dir(out.join("scripts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    scripts.sort();
    assert_eq!(
        scripts,
        [
            "chromadb-test.sbatch",
            "faiss-test.sbatch",
            "lustre-test.sbatch",
            "minio-test.sbatch",
            "ollama-llama2.sbatch",
            "postgres-test.sbatch",
            "triton-resnet50.sbatch",
            "vllm-mistral.sbatch",
            "weaviate-test.sbatch",
        ]
    );
}
