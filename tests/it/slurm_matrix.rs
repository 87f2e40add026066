//! Issue 23's conformance matrix on the 3-node cluster (`scripts/start-slurm.sh`, accounting
//! enforced): every service kind that has a real server here, started by its batch script with
//! the `host` runtime on a cluster node (Python's http.server; moto for S3; ChromaDB; our
//! node-llama-cpp server with the Ollama API and with the OpenAI API; file storage, which has no
//! server), on every placement (one node; `client_nodes: 2`; the seed's `nodes: 3` +
//! `ntasks-per-node: 1`), with the optional keys `url`, `ntasks` and `qos` present in some cells
//! and absent in others. The cells are submitted together and run concurrently (the partition
//! shares CPUs between jobs); each is asserted: every job completed and carries the account,
//! the rows come from the expected hosts (the batch node for one node, the two other nodes
//! otherwise), the run is valid, a multi-node service's throughput is the sum of its nodes'
//! rates, and nothing is left listening or queued. Each run measures 200 requests (the report's
//! validity floor is 100 per run, and a client node's run is half the service's). PostgreSQL is not a cell: the jobs run as
//! root here and `postgres` refuses to start as root (its scripts are in the rendered matrix,
//! `placement_matrix.rs`, with vLLM, Triton, Weaviate and Apptainer). Skipped unless the
//! cluster has 3 nodes. Every wait is bounded; nothing asserts timing.

use crate::common;
use crate::common::slurm::{Camp, JobBin};
use crate::placement_matrix::Placement;

use serde_json::Value;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn cluster() -> Option<HashMap<String, String>> {
    let env = common::server("slurm")?;
    if env.get("FB_TEST_SLURM_NODES")?.split(',').count() < 3 {
        eprintln!("skipped: the matrix needs a 3-node cluster");
        return None;
    }
    Some(env)
}

/// A kind with a real server here, as a recipe fragment for a service started on the node.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RealKind {
    Http,
    FileStorage,
    S3,
    Chroma,
    LlmOllamaApi,
    LlmOpenAiApi,
}

impl RealKind {
    const ALL: [RealKind; 6] = [
        RealKind::Http,
        RealKind::FileStorage,
        RealKind::S3,
        RealKind::Chroma,
        RealKind::LlmOllamaApi,
        RealKind::LlmOpenAiApi,
    ];
    fn label(self) -> &'static str {
        match self {
            RealKind::Http => "http",
            RealKind::FileStorage => "file-storage",
            RealKind::S3 => "s3",
            RealKind::Chroma => "chroma",
            RealKind::LlmOllamaApi => "llm-ollama",
            RealKind::LlmOpenAiApi => "llm-openai",
        }
    }
    /// The placements of this kind's cells. The two LLM APIs are one server here (a CPU-bound
    /// model on the cluster's shared cores): they split the three placements between them
    /// instead of running six model servers at once.
    fn placements(self) -> &'static [Placement] {
        match self {
            RealKind::LlmOllamaApi => &[Placement::OneNode, Placement::ClientNodes2],
            RealKind::LlmOpenAiApi => &[Placement::SeedNodes3],
            _ => &Placement::ALL,
        }
    }
    fn started(self) -> bool {
        self != RealKind::FileStorage
    }

    /// The service's lines (4-space indented), `with_url`: the optional address key written.
    fn lines(self, port: u16, with_url: bool) -> String {
        let llm_server = |api_port_key: &str, other_key: &str| {
            format!(
                "    runtime: host\n    start_command: [node, /opt/factorybench-llm/server.mjs]\n    environment:\n      FB_LLM_HOST: 127.0.0.1\n      {api_port_key}: \"{port}\"\n      {other_key}: \"{}\"\n      FB_LLM_MODEL_PATH: /opt/factorybench-llm/model/SmolLM2-135M-Instruct.Q4_1.gguf\n      FB_LLM_THREADS: \"1\"\n      FB_LLM_SEQUENCES: \"4\"\n    port: {port}\n",
                port + 1
            )
        };
        match self {
            RealKind::Http => format!(
                "    service_type: http\n    runtime: host\n    start_command: [python3, -m, http.server, --bind, 127.0.0.1, \"{port}\"]\n    port: {port}\n{}    client_count: 4\n    arrival: closed\n    requests_per_second: 20\n    requests: 200\n    duration: 20\n",
                if with_url { "    url: /\n" } else { "" }
            ),
            RealKind::FileStorage => "    service_type: file_storage\n    base_path: \"@ROOT@/fs\"\n    file_sizes: {\"64KB\": 1.0}\n    working_set_files: 2\n    io_size: 4KiB\n    use_direct_io: false\n    operation_mix: {read: 1.0}\n    client_count: 4\n    arrival: closed\n    requests_per_second: 50\n    requests: 200\n    duration: 20\n".to_string(),
            RealKind::S3 => format!(
                "    service_type: s3\n    runtime: host\n    start_command: [/opt/factorybench/moto/bin/moto_server, -H, 127.0.0.1, -p, \"{port}\"]\n    {}\n    bucket_name: fb-matrix\n    region: us-east-1\n    addressing: path\n    operation_mix: {{put: 0.5, get: 0.5}}\n    object_sizes: {{\"4KB\": 1.0}}\n    client_count: 4\n    arrival: closed\n    requests_per_second: 10\n    requests: 200\n    duration: 20\n",
                if with_url { format!("endpoint_url: http://127.0.0.1:{port}") } else { format!("port: {port}") }
            ),
            RealKind::Chroma => format!(
                "    service_type: vectordb\n    backend: chromadb\n    runtime: host\n    start_command: [/opt/factorybench/chroma/bin/chroma, run, --host, 127.0.0.1, --port, \"{port}\", --path, \"@ROOT@/chroma\"]\n    environment: {{ANONYMIZED_TELEMETRY: \"False\"}}\n    {}\n    dimension: 16\n    dataset_size: 200\n    client_count: 4\n    arrival: closed\n    requests_per_second: 10\n    requests: 200\n    duration: 20\n    timeout: 30\n",
                if with_url { format!("service_url: http://127.0.0.1:{port}") } else { format!("port: {port}") }
            ),
            RealKind::LlmOllamaApi => format!(
                "    service_type: ollama\n{}    model: smollm2:135m\n    api: generate\n    prompt: {{input_tokens: 4}}\n    output_tokens: 2\n    temperature: 0\n    client_count: 4\n    arrival: closed\n    requests: 200\n    duration: 150\n    timeout: 60\n",
                llm_server("FB_LLM_OLLAMA_PORT", "FB_LLM_OPENAI_PORT")
            ),
            RealKind::LlmOpenAiApi => format!(
                "    service_type: openai\n{}    model: SmolLM2-135M-Instruct\n    api: completions\n    prompt: {{input_tokens: 4}}\n    output_tokens: 2\n    ignore_eos: true\n    client_count: 4\n    arrival: closed\n    requests: 200\n    duration: 150\n    timeout: 60\n",
                llm_server("FB_LLM_OPENAI_PORT", "FB_LLM_OLLAMA_PORT")
            ),
        }
    }
}

struct Cell {
    name: String,
    kind: RealKind,
    placement: Placement,
    port: u16,
    camp: Camp,
}

fn recipe(
    kind: RealKind,
    p: Placement,
    i: usize,
    port: u16,
    env: &HashMap<String, String>,
) -> String {
    // The optional keys, each present in some cells and absent in others.
    let with_url = i % 2 == 0;
    let ntasks = i % 3 == 1;
    let qos = i % 2 == 1;
    format!(
        "benchmark: {{name: \"matrix {label} {pl}\"}}\nglobal:\n  metrics_db: \"@ROOT@/local.db\"\n  slurm: {{account: \"{account}\"}}\nservices:\n  - service_name: svc\n{lines}    warmup: 0\n    readiness_timeout: 150\n    slurm: {{{keys}partition: {part}, time: \"00:08:00\"{ntasks}{qos}}}\n",
        label = kind.label(),
        pl = p.label(),
        account = env["FB_TEST_SLURM_ACCOUNT"],
        lines = kind.lines(port, with_url),
        keys = p.slurm_keys(),
        part = env["FB_TEST_SLURM_PARTITION"],
        ntasks = if ntasks { ", ntasks: 1" } else { "" },
        qos = if qos {
            format!(", qos: {}", env.get("FB_TEST_SLURM_SHORT_QOS").map_or("normal", |s| s))
        } else {
            String::new()
        },
    )
}

fn sacct_accounts(ids: &[String]) -> HashMap<String, String> {
    let out = std::process::Command::new("sacct")
        .args([
            "-n",
            "-X",
            "-P",
            "-o",
            "JobID,Account",
            "-j",
            &ids.join(","),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('|'))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// (host, status, measured requests) of every run file of a campaign.
fn run_hosts(c: &Camp) -> Vec<(String, String, i64)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(c.dir.join("runs")).unwrap().flatten() {
        let p = e.path();
        if !p.extension().is_some_and(|x| x == "db") {
            continue;
        }
        let conn = rusqlite::Connection::open(&p).unwrap();
        let (run_id, host, status): (String, String, String) = conn
            .query_row("SELECT run_id, host, status FROM runs", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM requests WHERE run_id = ?1 AND warmup = 0",
                [&run_id],
                |r| r.get(0),
            )
            .unwrap();
        out.push((host, status, n));
    }
    out.sort();
    out
}

#[test]
fn matrix_of_real_kinds_and_placements_on_the_cluster() {
    let Some(env) = cluster() else { return };
    let nodes: Vec<String> = env["FB_TEST_SLURM_NODES"]
        .split(',')
        .map(String::from)
        .collect();
    let addrs: Vec<String> = env["FB_TEST_SLURM_NODE_ADDRS"]
        .split(',')
        .map(String::from)
        .collect();
    let t0 = Instant::now();
    let mut cells = Vec::new();
    for kind in RealKind::ALL {
        for &p in kind.placements() {
            let i = cells.len();
            // Two ports per cell (the LLM server opens both APIs); distinct across cells.
            let port = matrix_port_base() + (i as u16) * 2;
            let text = recipe(kind, p, i, port, &env);
            let camp = common::slurm::submit(&text, &[], "fb-matrix-", JobBin::Compiled);
            cells.push(Cell {
                name: format!("{}/{}", kind.label(), p.label()),
                kind,
                placement: p,
                port,
                camp,
            });
        }
    }
    eprintln!(
        "matrix: {} campaigns submitted in {:.1?}",
        cells.len(),
        t0.elapsed()
    );
    // All run at once; wait for every one (bounded).
    let mut states: Vec<Value> = Vec::new();
    for c in &cells {
        let left = Duration::from_secs(600).saturating_sub(t0.elapsed());
        states.push(c.camp.wait_done(left.max(Duration::from_secs(5))));
    }
    let wall = t0.elapsed();
    let mut failures = Vec::new();
    for (c, v) in cells.iter().zip(&states) {
        if let Err(e) = check_cell(c, v, &nodes, &addrs) {
            failures.push(format!("{}: {e}\nlogs:\n{}", c.name, c.camp.logs()));
        }
    }
    eprintln!(
        "matrix: {} cells ({} kinds, {} placements) on the cluster in {:.1?}",
        cells.len(),
        RealKind::ALL.len(),
        Placement::ALL.len(),
        wall
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn check_cell(c: &Cell, v: &Value, nodes: &[String], addrs: &[String]) -> Result<(), String> {
    let jobs = v["jobs"].as_array().cloned().unwrap_or_default();
    if jobs.len() != 2 {
        return Err(format!("service + report jobs expected: {v:#}"));
    }
    for j in &jobs {
        if j["state"] != "COMPLETED" {
            return Err(format!("job not COMPLETED: {j}"));
        }
    }
    let ids: Vec<String> = jobs
        .iter()
        .map(|j| j["job_id"].as_str().unwrap_or_default().to_string())
        .collect();
    // Every job carries the account (accounting's record of it).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let acc = sacct_accounts(&ids);
        if ids
            .iter()
            .all(|id| acc.get(id).is_some_and(|a| a == "fbtest"))
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("accounts in sacct: {acc:?} for {ids:?}"));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    // Where the service ran (endpoint file) and where the rows come from.
    let ep: Value = serde_json::from_slice(
        &std::fs::read(c.camp.dir.join("endpoints/svc.json")).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let service_node = ep["node"].as_str().unwrap_or_default().to_string();
    let runs = run_hosts(&c.camp);
    let (_, client_nodes) = c.placement.nodes();
    let hosts: Vec<&str> = runs.iter().map(|r| r.0.as_str()).collect();
    if client_nodes == 0 {
        if hosts != [service_node.as_str()] {
            return Err(format!(
                "one node: rows from {hosts:?}, service on {service_node}"
            ));
        }
    } else {
        let mut expected: Vec<&str> = nodes
            .iter()
            .map(String::as_str)
            .filter(|n| *n != service_node)
            .collect();
        expected.sort();
        if hosts != expected {
            return Err(format!(
                "clients expected on {expected:?} (service on {service_node}), rows from {hosts:?}"
            ));
        }
        if c.kind.started() {
            let i = nodes.iter().position(|n| *n == service_node).unwrap_or(0);
            if ep["host"] != addrs[i].as_str() {
                return Err(format!(
                    "endpoint host {} is not {}'s address",
                    ep["host"], service_node
                ));
            }
        }
    }
    for (host, status, n) in &runs {
        if status != "success" || *n == 0 {
            return Err(format!("run on {host}: {status}, {n} measured rows"));
        }
    }
    // The report: one valid service; with client nodes its throughput is the nodes' sum.
    let out = c
        .camp
        .fb()
        .args(["report", "--format", "json"])
        .arg(&c.camp.dir)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!("report: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let r: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let a = &r["analysis"];
    if a["valid"] != true {
        return Err(format!(
            "run not valid: {:#}",
            a["runs"]
                .as_array()
                .map(|v| v
                    .iter()
                    .map(|r| r["invalid_reasons"].clone())
                    .collect::<Vec<_>>())
                .unwrap_or_default()
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let services = a["services"].as_array().cloned().unwrap_or_default();
    if services.len() != 1 {
        return Err(format!("{} service aggregates", services.len()));
    }
    if client_nodes > 0 {
        let sum: f64 = a["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["total"]["throughput_ops_per_s"].as_f64().unwrap_or(0.0))
            .sum();
        let svc = services[0]["total"]["throughput_ops_per_s"]
            .as_f64()
            .unwrap_or(0.0);
        if (svc - sum).abs() > 1e-6 * sum.max(1.0) {
            return Err(format!(
                "service throughput {svc} is not the nodes' sum {sum}"
            ));
        }
        eprintln!(
            "{}: service {svc:.1}/s = sum of nodes; stagger {:.3} s",
            c.name,
            services[0]["stagger_s"].as_f64().unwrap_or(-1.0)
        );
    }
    // Nothing left listening on the service node's address.
    if c.kind.started() && client_nodes > 0 {
        let addr = format!("{}:{}", ep["host"].as_str().unwrap_or_default(), c.port);
        if let Ok(a) = addr.parse() {
            if std::net::TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok() {
                return Err(format!("{addr} still answers after the job"));
            }
        }
    }
    Ok(())
}

/// Case 5 on the cluster: a GPU service with two client nodes is one heterogeneous job: the
/// service's component on the GPU partition with `gres/gpu=1`, the clients' on the CPU partition
/// on two other nodes with no GPU; the rows come from those nodes, the endpoint from the GPU node.
#[test]
fn gpu_service_runs_as_a_heterogeneous_job_on_the_cluster() {
    let Some(env) = cluster() else { return };
    let (Some(gpu_part), Some(gpu_nodes)) = (
        env.get("FB_TEST_SLURM_GPU_PARTITION"),
        env.get("FB_TEST_SLURM_GPU_NODES"),
    ) else {
        eprintln!("skipped: the cluster has no GPU partition");
        return;
    };
    let port = matrix_port_base() + 38;
    let text = format!(
        "benchmark: {{name: \"matrix het\"}}\nglobal:\n  metrics_db: \"@ROOT@/local.db\"\nservices:\n  - service_name: svc\n{}    warmup: 0\n    readiness_timeout: 60\n    slurm: {{account: {}, partition: {gpu_part}, gres: \"gpu:1\", client_partition: {}, client_nodes: 2, time: \"00:05:00\"}}\n",
        RealKind::Http.lines(port, false),
        env["FB_TEST_SLURM_ACCOUNT"],
        env["FB_TEST_SLURM_PARTITION"],
    );
    let c = common::slurm::submit(&text, &[], "fb-matrix-het-", JobBin::Compiled);
    let v = c.wait_done(Duration::from_secs(300));
    let service = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["role"] == "service")
        .cloned()
        .unwrap();
    assert_eq!(service["state"], "COMPLETED", "{v:#}\n{}", c.logs());
    let id = service["job_id"].as_str().unwrap();
    // The components as accounting recorded them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let rows: Vec<Vec<String>> = loop {
        let out = std::process::Command::new("sacct")
            .args([
                "-n",
                "-X",
                "-P",
                "-o",
                "JobID,Partition,NodeList,AllocTRES,Account",
                "-j",
                id,
            ])
            .output()
            .unwrap();
        let rows: Vec<Vec<String>> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('|').map(String::from).collect())
            .collect();
        if rows.len() == 2 || Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(rows.len(), 2, "two components: {rows:?}");
    let (svc_c, cli_c) = (&rows[0], &rows[1]);
    assert_eq!(svc_c[0], format!("{id}+0"));
    assert_eq!(&svc_c[1], gpu_part);
    assert!(gpu_nodes.split(',').any(|n| n == svc_c[2]), "{svc_c:?}");
    assert!(svc_c[3].contains("gres/gpu=1"), "{svc_c:?}");
    assert_eq!(cli_c[1], env["FB_TEST_SLURM_PARTITION"]);
    assert!(!cli_c[3].contains("gpu"), "clients hold no GPU: {cli_c:?}");
    assert!(
        rows.iter().all(|r| r[4] == env["FB_TEST_SLURM_ACCOUNT"]),
        "{rows:?}"
    );
    // Service on the GPU node, rows from the two others.
    let ep: Value =
        serde_json::from_slice(&std::fs::read(c.dir.join("endpoints/svc.json")).unwrap()).unwrap();
    assert_eq!(ep["node"], svc_c[2].as_str());
    let runs = run_hosts(&c);
    let hosts: Vec<&str> = runs.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(hosts.len(), 2, "{runs:?}");
    assert!(!hosts.contains(&svc_c[2].as_str()), "{hosts:?}");
    for (host, status, n) in &runs {
        assert!(status == "success" && *n > 0, "{host}: {status} {n}");
    }
    // The client nodes' runners sample no GPU (the service's is on its own node).
    let log = c.logs();
    assert_eq!(
        log.matches("GPU telemetry off on this client node").count(),
        2,
        "{log}"
    );
    eprintln!(
        "heterogeneous job {id}: service on {} ({}, {}), clients on {:?} ({})",
        svc_c[2], svc_c[1], svc_c[3], hosts, cli_c[1]
    );
}

/// The first of this test process's 40 ports. Below Linux's ephemeral range (32768–60999): a
/// port in it can be held by any outgoing connection on the node (a runner's, slurmd's), and a
/// service started on it then fails to bind now and then ("Address already in use").
fn matrix_port_base() -> u16 {
    20_000 + (std::process::id() % 300) as u16 * 40
}
