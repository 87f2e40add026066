//! What valid recipes mean: seed recipes accepted unchanged, defaults, legacy semantics,
//! secrets handling.

use factorybench::recipe::{self, *};
use std::path::Path;

fn plan(yaml: &str) -> recipe::Loaded {
    recipe::parse_str(yaml, Path::new("test.yml")).unwrap_or_else(|e| panic!("{e}"))
}

fn one(yaml: &str) -> Service {
    plan(yaml).plan.services.into_iter().next().unwrap()
}

#[test]
fn seed_recipes_validate_unchanged() {
    for (f, n) in [
        ("recipes/ollama-vllm.yml", 2),
        ("recipes/comprehensive.yml", 7),
        ("recipes/multi-service.yml", 3),
        ("recipes/quickstart.yml", 1),
    ] {
        let l = recipe::load(Path::new(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(l.plan.services.len(), n, "{f}");
    }
}

#[test]
fn every_recipe_in_recipes_dir_is_valid() {
    for e in std::fs::read_dir("recipes").unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
            recipe::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
    }
}

#[test]
fn plain_secrets_warn_and_never_serialize() {
    let l = recipe::load(Path::new("recipes/comprehensive.yml")).unwrap();
    let msgs: Vec<_> = l.warnings.iter().map(|w| w.path.as_str()).collect();
    assert!(msgs.contains(&"services[4].password"), "{msgs:?}");
    assert!(msgs.contains(&"services[4].environment.POSTGRES_PASSWORD"));
    assert!(msgs.contains(&"services[5].secret_key"));
    let json = serde_json::to_string(&l.plan).unwrap();
    assert!(!json.contains("minioadmin"), "plan JSON leaks a secret");
    assert!(!json.contains("\"postgres\"") || !json.contains("password\":\"postgres"));
    assert!(json.contains("<redacted>"));
    // Debug output is redacted too (it reaches logs).
    assert!(!format!("{:?}", l.plan).contains("minioadmin"));
}

#[test]
fn defaults_match_the_documented_ones() {
    let s = one("services:\n  - service_name: v\n    service_type: vectordb\n    port: 8000\n");
    assert_eq!(s.load.clients, 1);
    assert_eq!(s.load.target_rate_per_client_per_s, 10.0);
    assert_eq!(s.load.duration_s, 60.0);
    assert_eq!(s.load.arrival, Arrival::Constant);
    assert_eq!(s.runtime, Runtime::External);
    let Workload::Vectordb(v) = &s.workload else {
        panic!()
    };
    assert_eq!(v.backend, VectorBackend::Chromadb);
    assert_eq!((v.dimension, v.batch_size, v.search_k), (384, 10, 10));
    assert_eq!(s.endpoint.port, Some(8000));
    assert_eq!(s.endpoint.url.as_deref(), Some("http://127.0.0.1:8000"));

    let s = one("services:\n  - service_name: d\n    service_type: database\n    service_url: postgresql://db.example:6543/x\n    password_env: PW\n");
    let Workload::Database(d) = &s.workload else {
        panic!()
    };
    assert_eq!(d.backend, DatabaseBackend::Postgresql);
    assert_eq!(
        (s.endpoint.host.as_str(), s.endpoint.port),
        ("db.example", Some(6543))
    );
    assert_eq!(d.password, Some(Secret::Env("PW".into())));
}

#[test]
fn zero_rate_means_closed_loop_unthrottled() {
    let s = one("services:\n  - service_name: f\n    service_type: file_storage\n    base_path: /tmp\n    requests_per_second: 0\n");
    assert_eq!(s.load.arrival, Arrival::Closed);
    assert_eq!(s.load.target_rate_per_client_per_s, 0.0);
    assert_eq!(s.load.target_rate_total_per_s(), None);
}

#[test]
fn rate_is_per_client() {
    let s = one("services:\n  - service_name: f\n    service_type: file_storage\n    base_path: /tmp\n    client_count: 5\n    requests_per_second: 10\n");
    assert_eq!(s.load.target_rate_total_per_s(), Some(50.0));
    // plan.json and the stored runs keep the key they always had.
    let j = serde_json::to_value(&s.load).unwrap();
    assert_eq!(j["rate_per_client"], 10.0);
}

#[test]
fn endpoint_is_resolved_once_with_the_kind_default_port() {
    // No port and no URL: the backend's default, as the compiler launches it.
    let s = one("services:\n  - service_name: w\n    service_type: vectordb\n    backend: weaviate\n    host: 10.0.0.5\n");
    assert_eq!(s.endpoint.host, "10.0.0.5");
    assert_eq!(s.endpoint.port, Some(8080));
    // The URL's port wins over the default; `port` over both.
    let s = one("services:\n  - service_name: o\n    service_type: ollama\n    model: m\n    service_url: http://gpu1:11500\n");
    assert_eq!(s.endpoint.port, Some(11500));
    assert_eq!(s.endpoint.host, "gpu1");
    let s = one(
        "services:\n  - service_name: o\n    service_type: vllm\n    model: m\n    port: 9001\n",
    );
    assert_eq!(s.endpoint.url.as_deref(), Some("http://127.0.0.1:9001"));
    // In-process Faiss and file storage have no port (every build accepts Faiss: issue 24).
    let s = one("services:\n  - service_name: f\n    service_type: vectordb\n    backend: faiss\n");
    assert_eq!((s.endpoint.port, s.endpoint.url), (None, None));
}

#[test]
fn legacy_sync_mode_bool_and_named_modes() {
    let base = "services:\n  - service_name: f\n    service_type: file_storage\n    base_path: /tmp\n    sync_mode: ";
    for (v, want) in [
        ("true", SyncMode::Fsync),
        ("false", SyncMode::None),
        ("fdatasync", SyncMode::Fdatasync),
        ("dsync", SyncMode::Dsync),
    ] {
        let s = one(&format!("{base}{v}\n"));
        let Workload::FileStorage(f) = &s.workload else {
            panic!()
        };
        assert_eq!(f.sync_mode, want, "{v}");
    }
}

#[test]
fn sizes_are_binary_like_fio() {
    let s = one("services:\n  - service_name: f\n    service_type: file_storage\n    base_path: /tmp\n    file_sizes: {\"1KB\": 0.5, \"4KiB\": 0.25, \"1MB\": 0.25}\n");
    let Workload::FileStorage(f) = &s.workload else {
        panic!()
    };
    assert_eq!(
        f.file_sizes.weights,
        vec![(1024, 0.5), (4096, 0.25), (1 << 20, 0.25)]
    );
}

#[test]
fn secrets_from_env_file_and_generated() {
    let s = one("services:\n  - service_name: m\n    service_type: s3\n    container_image: docker://minio/minio\n    port: 9000\n    access_key: ${AK}\n    secret_key_file: /run/secrets/sk\n    environment:\n      MINIO_ROOT_PASSWORD: {from_env: MINIO_PW}\n      MINIO_REGION: eu-west-1\n      API_TOKEN: ${TOKEN}\n");
    let Workload::S3(w) = &s.workload else {
        panic!()
    };
    assert_eq!(w.access_key, Secret::Env("AK".into()));
    assert_eq!(w.secret_key, Secret::File("/run/secrets/sk".into()));
    assert_eq!(w.endpoint_url, "http://127.0.0.1:9000");
    let names: Vec<_> = s.secrets().iter().map(|(n, _)| n.to_string()).collect();
    assert!(names.contains(&"MINIO_ROOT_PASSWORD".to_string()));
    assert!(names.contains(&"API_TOKEN".to_string()));
    assert!(!names.contains(&"MINIO_REGION".to_string()));

    // A service factorybench starts itself gets generated credentials by default.
    let s = one("services:\n  - service_name: p\n    service_type: database\n    container_image: docker://postgres:15\n");
    let Workload::Database(d) = &s.workload else {
        panic!()
    };
    assert_eq!(d.password, Some(Secret::Generated));
}

#[test]
fn no_warning_for_env_references() {
    let l = plan(
        "services:\n  - service_name: p\n    service_type: database\n    password: ${PGPASSWORD}\n",
    );
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn global_slurm_defaults_fill_gaps() {
    let s = one("global:\n  slurm: {partition: cpu, account: p1, time: \"00:10:00\", modules: [env/release]}\nservices:\n  - service_name: f\n    service_type: file_storage\n    base_path: /tmp\n    slurm: {partition: gpu, gres: \"gpu:2\", modules: [CUDA]}\n");
    assert_eq!(s.slurm.partition.as_deref(), Some("gpu"));
    assert_eq!(s.slurm.account.as_deref(), Some("p1"));
    assert_eq!(s.slurm.time_limit_s, Some(600));
    assert_eq!(s.slurm.modules, vec!["env/release", "CUDA"]);
    assert!(s.wants_gpu());
    assert_eq!(s.slurm.signal_grace_s, 60);
}

#[test]
fn sweep_expands_per_array_task() {
    let s = one("services:\n  - service_name: f\n    service_type: file_storage\n    base_path: /tmp\n    sweep: {client_count: [1, 4, 16]}\n");
    let t = s.with_sweep_index(2).unwrap();
    assert_eq!(t.load.clients, 16);
    assert!(t.sweep.is_none());
    assert!(s.with_sweep_index(3).is_none());
}

#[test]
fn yaml_anchors_and_merge_keys_work() {
    let l = plan("x-defaults: &d\n  client_count: 3\n  duration: 30\nservices:\n  - <<: *d\n    service_name: f\n    service_type: file_storage\n    base_path: /tmp\n");
    let s = &l.plan.services[0];
    assert_eq!((s.load.clients, s.load.duration_s), (3, 30.0));
}

#[test]
fn compare_thresholds_key() {
    let yaml = "benchmark: {name: t}\nservices:\n  - service_name: api\n    service_type: http\n    service_url: http://127.0.0.1:1\n    compare_thresholds: {p99_ms: 10%, error_rate: 0.02, ttft_p99_ms: +50ms}\n";
    let s = one(yaml);
    assert_eq!(s.compare_thresholds["latency_p99_ms"], "10%");
    assert_eq!(s.compare_thresholds["error_rate"], "0.02");
    assert_eq!(s.compare_thresholds["ttft_p99_ms"], "+50ms");
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["compare_thresholds"]["latency_p99_ms"], "10%");
    let bad = yaml.replace("p99_ms: 10%", "p99_ms: fast");
    let e = recipe::parse_str(&bad, Path::new("t.yml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("compare_thresholds.p99_ms") && e.contains("METRIC=LIMIT"),
        "{e}"
    );
}

#[test]
fn compare_min_change_key() {
    let yaml = "benchmark: {name: t}\nservices:\n  - service_name: api\n    service_type: http\n    service_url: http://127.0.0.1:1\n    compare_min_change: {p50_ms: 0.1ms, error_rate: 0}\n";
    let s = one(yaml);
    assert_eq!(s.compare_min_change["latency_p50_ms"], "0.1ms");
    assert_eq!(s.compare_min_change["error_rate"], "0");
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["compare_min_change"]["latency_p50_ms"], "0.1ms");
    // A percentage is a limit, not a minimum change: refused with its location.
    let bad = yaml.replace("p50_ms: 0.1ms", "p50_ms: 5%");
    let e = recipe::parse_str(&bad, Path::new("t.yml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("compare_min_change.p50_ms") && e.contains("absolute amount"),
        "{e}"
    );
}

#[test]
fn client_nodes_set_the_node_count_and_split_the_clients() {
    let s = one("services:\n  - service_name: w\n    service_type: http\n    runtime: host\n    start_command: [srv]\n    port: 8080\n    client_count: 5\n    requests: 101\n    slurm: {client_nodes: 2, ntasks-per-node: 1}\n");
    assert_eq!(s.slurm.nodes, 3);
    assert_eq!(s.slurm.client_nodes, 2);
    assert_eq!(s.slurm.ntasks_per_node, Some(1));
    let a = s.for_client_node(Some(ClientShare::parse("0/2").unwrap()), Some("10.1.0.7"));
    let b = s.for_client_node(Some(ClientShare::parse("1/2").unwrap()), Some("10.1.0.7"));
    assert_eq!((a.load.clients, b.load.clients), (3, 2));
    assert_eq!((a.load.requests, b.load.requests), (Some(51), Some(50)));
    assert_ne!(a.load.seed, b.load.seed);
    assert_eq!(a.endpoint.host, "10.1.0.7");
    assert_eq!(a.endpoint.url.as_deref(), Some("http://10.1.0.7:8080"));
    // The per-client rate stays: the total target is split in the same proportion.
    assert_eq!(
        a.load.target_rate_per_client_per_s,
        s.load.target_rate_per_client_per_s
    );
    assert!(ClientShare::parse("2/2").is_err());
    assert!(ClientShare::parse("x").is_err());
}

#[test]
fn nodes_that_contradict_client_nodes_are_an_error() {
    let e = recipe::parse_str(
        "services:\n  - service_name: w\n    service_type: file_storage\n    base_path: /tmp\n    slurm: {nodes: 2, client_nodes: 2}\n",
        Path::new("t.yml"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("client_nodes"), "{e}");
}

#[test]
fn gpu_partition_without_gpu_request_warns_with_location() {
    let l = plan("services:\n  - service_name: v\n    service_type: vllm\n    container_image: docker://vllm/vllm-openai:v0.6.3\n    model: m\n    slurm: {partition: gpu}\n");
    let w = l
        .warnings
        .iter()
        .find(|w| w.path == "services[0].slurm.partition")
        .unwrap_or_else(|| panic!("{:?}", l.warnings));
    assert!(w.message.contains("no GPU"), "{}", w.message);
    assert!(w.pos.line > 0);
    let ok = plan("services:\n  - service_name: v\n    service_type: vllm\n    container_image: docker://vllm/vllm-openai:v0.6.3\n    model: m\n    slurm: {partition: gpu, gres: \"gpu:1\"}\n");
    assert!(
        !ok.warnings
            .iter()
            .any(|w| w.path.ends_with("slurm.partition")),
        "{:?}",
        ok.warnings
    );
}
