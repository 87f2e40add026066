//! Issue 23: campaigns as users write them. Each test here is one numbered case of the issue that
//! the shapes users write got wrong (the multi-node cluster itself is exercised in
//! `slurm_matrix.rs`): the rendered scripts, the plan, `explain`, `submit --dry-run` and the
//! report's aggregate of staggered client nodes.

use crate::common;
use crate::reportdb::*;

use factorybench::recipe::{self, Loaded, Service};
use factorybench::render::{RenderOptions, Renderer};
use factorybench::runner::ready::Probe;
use std::path::Path;

const CAMPAIGN_DIR: &str = "/shared/campaigns/issue23-20260101-000000";

pub fn parse(text: &str) -> Loaded {
    recipe::parse_str(text, Path::new("recipe.yml")).unwrap_or_else(|e| panic!("{e}"))
}

pub fn parse_err(text: &str) -> String {
    match recipe::parse_str(text, Path::new("recipe.yml")) {
        Ok(_) => panic!("recipe was accepted:\n{text}"),
        Err(e) => format!("{e}"),
    }
}

pub fn script(l: &Loaded, svc: &Service) -> String {
    Renderer::new()
        .render_service(
            &l.plan,
            svc,
            &RenderOptions {
                campaign_dir: CAMPAIGN_DIR.into(),
                fb_bin: "/opt/fb/bin/factorybench".into(),
            },
        )
        .expect("renders")
}

/// The value of `#SBATCH --KEY=` in a script.
pub fn sbatch(script: &str, key: &str) -> Option<String> {
    script
        .lines()
        .find_map(|l| l.strip_prefix(&format!("#SBATCH --{key}=")))
        .map(str::to_string)
}

fn one(service: &str) -> String {
    format!("benchmark: {{name: issue23}}\nglobal: {{metrics_db: m.db}}\nservices:\n{service}")
}

/// Case 1: file storage with `client_nodes: 2` asked for 3 nodes and 1 task, so SLURM shrank the
/// job to one node and the srun step failed.
#[test]
fn file_storage_with_client_nodes_asks_a_task_per_node() {
    let l = parse(&one(
        "  - service_name: fs\n    service_type: file_storage\n    base_path: /shared/fb\n    client_count: 4\n    slurm: {client_nodes: 2}\n",
    ));
    let s = script(&l, &l.plan.services[0]);
    assert_eq!(sbatch(&s, "nodes").as_deref(), Some("3"));
    assert_eq!(sbatch(&s, "ntasks").as_deref(), Some("3"), "{s}");
    assert!(s.contains("srun --nodes=2 --ntasks=2"));
}

/// Case 2: an HTTP service without `url:` (its URL defaults to `http://127.0.0.1:PORT/`) whose
/// clients run on other nodes: readiness (and the clients) must use the node's address.
#[test]
fn http_without_url_is_probed_at_the_service_node() {
    let l = parse(&one(
        "  - service_name: web\n    service_type: http\n    runtime: host\n    start_command: [python3, -m, http.server, --bind, 127.0.0.1, \"8080\"]\n    port: 8080\n    client_count: 2\n    slurm: {client_nodes: 2, ntasks-per-node: 1}\n",
    ));
    let svc = l.plan.services[0].for_client_node(None, Some("10.250.0.11"));
    let probe = Probe::for_service(&svc).describe();
    assert_eq!(probe, "GET http://10.250.0.11:8080/ (any HTTP response)");
    match &svc.workload {
        recipe::Workload::Http(h) => assert_eq!(h.url, "http://10.250.0.11:8080/"),
        w => panic!("{w:?}"),
    }
    // An external URL stays where it says.
    let l = parse(&one(
        "  - service_name: web\n    service_type: http\n    url: http://web.site:8080/x\n    client_count: 2\n    slurm: {client_nodes: 2}\n",
    ));
    let svc = l.plan.services[0].for_client_node(None, Some("10.250.0.11"));
    assert_eq!(
        Probe::for_service(&svc).describe(),
        "GET http://web.site:8080/x (any HTTP response)"
    );
}

/// Case 3: Ollama's bind address travels in `OLLAMA_HOST`, not in its arguments: with client
/// nodes it must name the node's address too (every runtime), and it reaches the container.
#[test]
fn ollama_host_env_names_the_node_address_with_client_nodes() {
    for runtime in ["podman", "apptainer"] {
        let l = parse(&one(&format!(
            "  - service_name: llm\n    service_type: ollama\n    runtime: {runtime}\n    container_image: docker://ollama/ollama\n    model: smollm2:135m\n    client_count: 2\n    slurm: {{client_nodes: 2}}\n"
        )));
        let s = script(&l, &l.plan.services[0]);
        assert!(
            !s.contains("OLLAMA_HOST=127.0.0.1"),
            "{runtime}: OLLAMA_HOST still loopback:\n{s}"
        );
        assert!(
            s.contains("export OLLAMA_HOST=\"${FB_BIND_ADDR}\":11434"),
            "{runtime}:\n{s}"
        );
        match runtime {
            "podman" => assert!(s.contains("args+=(--env OLLAMA_HOST)")),
            _ => assert!(s.contains("export APPTAINERENV_OLLAMA_HOST=\"${OLLAMA_HOST}\"")),
        }
        // What bash makes of it.
        let line = s
            .lines()
            .find(|l| l.starts_with("export OLLAMA_HOST="))
            .unwrap();
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "FB_BIND_ADDR=10.250.0.11; {line}; printf %s \"$OLLAMA_HOST\""
            ))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "10.250.0.11:11434");
    }
    // One node: unchanged, loopback.
    let l = parse(&one(
        "  - service_name: llm\n    service_type: ollama\n    runtime: podman\n    container_image: docker://ollama/ollama\n    model: m\n",
    ));
    let s = script(&l, &l.plan.services[0]);
    assert!(
        s.contains("args+=(--env 'OLLAMA_HOST=127.0.0.1:11434')"),
        "{s}"
    );
}

/// Case 4: the seed's form `nodes: 4` + `ntasks-per-node: 1` rendered `--nodes=4 --ntasks=1`
/// (SLURM shrank it to one node; `explain` charged 4 node-hours). It now means clients on
/// the other 3 nodes.
#[test]
fn seed_nodes_form_runs_clients_on_the_other_nodes() {
    let text = one(
        "  - service_name: web\n    service_type: http\n    runtime: host\n    start_command: [python3, -m, http.server, --bind, 127.0.0.1, \"8080\"]\n    port: 8080\n    url: /\n    client_count: 6\n    slurm: {nodes: 4, ntasks-per-node: 1, time: \"01:00:00\"}\n",
    );
    let l = parse(&text);
    let svc = &l.plan.services[0];
    assert_eq!(svc.slurm.client_nodes, 3);
    assert_eq!(svc.slurm.nodes, 4);
    let s = script(&l, svc);
    assert_eq!(sbatch(&s, "nodes").as_deref(), Some("4"));
    assert_eq!(sbatch(&s, "ntasks").as_deref(), Some("4"));
    assert!(s.contains("srun --nodes=3 --ntasks=3 --ntasks-per-node=1 --relative=1"));
    assert!(s.contains("--endpoint-host \"$FB_BIND_ADDR\""));
    // `explain` states the rule and charges the 4 nodes that run.
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("r.yml"), &text).unwrap();
    let out = common::bin()
        .args(["explain", "r.yml"])
        .current_dir(t.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("web: service on 1 node, clients on the other 3 (nodes: 4)"),
        "{stdout}"
    );
    assert!(stdout.contains("4.00"), "{stdout}");
    // Fewer clients than client nodes: refused at `nodes`, with a fix.
    let err = parse_err(&one(
        "  - service_name: web\n    service_type: http\n    url: http://web.site/\n    client_count: 2\n    slurm: {nodes: 4, ntasks-per-node: 1}\n",
    ));
    assert!(err.contains("services[0].slurm.nodes"), "{err}");
    assert!(err.contains("write `nodes: 1`"), "{err}");
}

/// Case 6: the report job had no `--time` and took the `gpu` partition of the first service
/// without `gres`.
#[test]
fn report_job_gets_a_time_limit_and_a_cpu_partition() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("r.yml"),
        one(
            "  - service_name: a\n    service_type: http\n    url: http://web.site/\n    slurm: {partition: gpu, account: acct}\n  - service_name: b\n    service_type: http\n    url: http://web.site/\n    slurm: {partition: gpu, gres: \"gpu:1\", account: acct}\n  - service_name: c\n    service_type: http\n    url: http://web.site/\n    slurm: {partition: cpu, account: acct}\n",
        ),
    )
    .unwrap();
    let out = common::bin()
        .args(["submit", "r.yml", "--dry-run"])
        .current_dir(t.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = stdout
        .lines()
        .find(|l| l.contains("--job-name=fb-report"))
        .expect("report job");
    assert!(report.contains("--partition=cpu"), "{report}");
    assert!(report.contains("--time=00:10:00"), "{report}");
    assert!(report.contains("--account=acct"), "{report}");
    // Overridable.
    let out = common::bin()
        .args([
            "submit",
            "r.yml",
            "--dry-run",
            "--report-partition",
            "short",
            "--report-time",
            "5",
        ])
        .current_dir(t.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = stdout
        .lines()
        .find(|l| l.contains("--job-name=fb-report"))
        .expect("report job");
    assert!(
        report.contains("--partition=short") && report.contains("--time=5"),
        "{report}"
    );
}

/// Case 7: `cpus-per-task` (sbatch's spelling) was rejected; a time limit shorter than warmup +
/// duration passed `validate`.
#[test]
fn sbatch_spellings_and_time_limit_against_the_work() {
    let l = parse(&one(
        "  - service_name: web\n    service_type: http\n    url: http://web.site/\n    slurm: {cpus-per-task: 4, ntasks-per-node: 1}\n",
    ));
    let s = script(&l, &l.plan.services[0]);
    assert_eq!(sbatch(&s, "cpus-per-task").as_deref(), Some("4"));
    // 5 minutes, 60 s of them signal_grace, for 30 s warmup + 600 s duration: every run cut
    // short (a warning with the time that fits: a short limit is also a deliberate cap).
    let l = parse(&one(
        "  - service_name: web\n    service_type: http\n    url: http://web.site/\n    warmup: 30\n    duration: 600\n    slurm: {time: \"00:05:00\"}\n",
    ));
    let w = l
        .warnings
        .iter()
        .find(|w| w.path == "services[0].slurm.time")
        .unwrap_or_else(|| panic!("{:?}", l.warnings));
    assert!(
        w.message.contains("less than warmup + duration (630 s)"),
        "{}",
        w.message
    );
    assert!(
        w.help.as_deref().unwrap_or("").contains("at least 870 s"),
        "{:?}",
        w.help
    );
    // Enough for the run, not for the readiness budget on top: a warning.
    let l = parse(&one(
        "  - service_name: web\n    service_type: http\n    url: http://web.site/\n    duration: 200\n    readiness_timeout: 120\n    slurm: {time: \"00:05:00\"}\n",
    ));
    assert!(
        l.warnings
            .iter()
            .any(|w| w.path == "services[0].slurm.time" && w.message.contains("readiness")),
        "{:?}",
        l.warnings
    );
}

/// Case 10: two client nodes whose measured windows started 1 s apart, each at 40 req/s for
/// 8 s. Requests / union of the windows gave 640 / 9 s = 71.1/s; the service served the sum
/// of the nodes' rates, 80/s, and the report states the 1 s stagger.
#[test]
fn staggered_client_nodes_sum_their_rates() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    std::fs::create_dir(&runs).unwrap();
    for (i, node) in ["fbn2", "fbn3"].into_iter().enumerate() {
        let mut db = TestDb::create(&runs.join(format!("web-7-{node}.db")));
        let mut spec = RunSpec::new(&format!("7-{node}"), "web", "http");
        let start = T0 + S + i as i64 * S;
        spec.measure_start_ns = Some(start);
        spec.ended_ns = Some(start + 8 * S);
        spec.duration_s = 8.0;
        spec.host = node.into();
        spec.slurm_job_id = Some("7".into());
        spec.target_rate = Some(40.0);
        db.add_run(&spec);
        let reqs: Vec<Req> = (0..320)
            .map(|k| Req::ok("get", start + k * (S / 40), 0, 500 * US))
            .collect();
        db.add_requests(&spec.run_id, &reqs);
    }
    let c = factorybench::report::analysis::analyze_path(dir.path()).unwrap();
    assert_eq!(c.services.len(), 1, "the two nodes are one measurement");
    let s = &c.services[0];
    assert_eq!(s.total.requests, 640);
    let per_node: f64 = c.runs.iter().map(|r| r.total.throughput_ops_per_s).sum();
    assert!((per_node - 80.0).abs() < 1e-6, "{per_node}");
    assert!(
        (s.total.throughput_ops_per_s - per_node).abs() < 1e-6,
        "service {} vs sum of nodes {per_node}",
        s.total.throughput_ops_per_s
    );
    assert!((s.span_s - 9.0).abs() < 1e-9);
    assert!((s.stagger_s - 1.0).abs() < 1e-9, "{}", s.stagger_s);
}

/// Case 5: `gres: gpu:1` with client nodes gave every node a GPU (GRES counts per node). The job
/// is now heterogeneous: the service's component takes the GPU, the clients' none.
#[test]
fn gpu_service_with_client_nodes_is_a_heterogeneous_job() {
    let l = parse(&one(
        "  - service_name: llm\n    service_type: ollama\n    runtime: apptainer\n    container_image: docker://ollama/ollama\n    model: m\n    client_count: 3\n    slurm: {partition: gpu, gres: \"gpu:1\", client_partition: cpu, client_nodes: 3, account: a, time: \"01:00:00\"}\n",
    ));
    let s = script(&l, &l.plan.services[0]);
    let header: Vec<&str> = s.lines().filter(|l| l.starts_with("#SBATCH")).collect();
    let het = header
        .iter()
        .position(|l| *l == "#SBATCH hetjob")
        .unwrap_or_else(|| panic!("no hetjob line:\n{s}"));
    let (service, clients) = header.split_at(het);
    assert!(service.contains(&"#SBATCH --partition=gpu"));
    assert!(service.contains(&"#SBATCH --gres=gpu:1"));
    assert!(service.contains(&"#SBATCH --nodes=1"));
    assert!(service.contains(&"#SBATCH --ntasks=1"));
    assert!(clients.contains(&"#SBATCH --partition=cpu"));
    assert!(clients.contains(&"#SBATCH --nodes=3"));
    assert!(clients.contains(&"#SBATCH --ntasks=3"));
    assert!(clients.contains(&"#SBATCH --account=a"));
    assert!(clients.contains(&"#SBATCH --time=01:00:00"));
    assert!(!clients.iter().any(|l| l.contains("gres")), "{clients:?}");
    assert!(s.contains("srun --het-group=1 --nodes=3 --ntasks=3 --ntasks-per-node=1"));
    assert!(s.contains(" --nv"), "the service still gets its GPU");
    // A sweep cannot be heterogeneous (no arrays of heterogeneous jobs): warned.
    let l = parse(&one(
        "  - service_name: llm\n    service_type: ollama\n    runtime: apptainer\n    container_image: docker://ollama/ollama\n    model: m\n    client_count: 3\n    sweep: {client_count: [3, 6]}\n    slurm: {partition: gpu, gres: \"gpu:1\", client_nodes: 2}\n",
    ));
    assert!(
        l.warnings.iter().any(|w| w.path == "services[0].sweep"),
        "{:?}",
        l.warnings
    );
}

/// Case 5 (telemetry): the runners on the client nodes sample no GPU, so the batch step samples
/// the service node's GPUs beside the service and stops the sampler at teardown. Without NVML
/// (this machine) the sampler says so in one line, records nothing and exits at once.
#[test]
fn gpu_service_with_client_nodes_samples_the_service_node() {
    let recipe = |gres: &str| {
        one(&format!(
            "  - service_name: llm\n    service_type: ollama\n    runtime: apptainer\n    container_image: docker://ollama/ollama\n    model: m\n    client_count: 2\n    slurm: {{partition: gpu, {gres}client_nodes: 2}}\n"
        ))
    };
    let l = parse(&recipe("gres: \"gpu:1\", "));
    let s = script(&l, &l.plan.services[0]);
    let start = s
        .find("monitor sample-service-node --service \"$FB_SERVICE\" --out \"${FB_DB%.db}.service-node.jsonl\" &")
        .unwrap_or_else(|| panic!("no service-node sampler:\n{s}"));
    assert!(
        start < s.find("srun --het-group=1").unwrap(),
        "started before the clients"
    );
    assert!(
        s.contains("kill \"$FB_SAMPLER_PID\""),
        "stopped at teardown"
    );
    // No GPU asked for: nothing to sample.
    let l = parse(&recipe(""));
    assert!(!script(&l, &l.plan.services[0]).contains("sample-service-node"));

    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("llm-1.service-node.jsonl");
    let o = common::bin()
        .args([
            "monitor",
            "sample-service-node",
            "--service",
            "llm",
            "--out",
        ])
        .arg(&out)
        .env("LD_LIBRARY_PATH", t.path())
        .timeout(std::time::Duration::from_secs(20))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("no GPU telemetry on the service node") && err.contains("`llm`"),
        "{err}"
    );
    assert!(!out.exists(), "nothing recorded without NVML");
}

/// Case 7 (ports): vLLM, Triton and ChromaDB all on 8000 in one campaign could land on one node,
/// where the second job's port check failed after the queue wait. Now a warning at the later
/// service's `port` that `submit` refuses; ordered services (depends_on) may share a port.
#[test]
fn services_that_may_share_a_node_never_share_a_port() {
    let two = |extra: &str| {
        one(&format!(
            "  - service_name: a\n    service_type: vllm\n    container_image: docker://v\n    model: m\n    port: 8000\n  - service_name: b\n    service_type: vectordb\n    backend: chromadb\n    container_image: docker://c\n    port: 8000\n{extra}"
        ))
    };
    let l = parse(&two(""));
    let w = l
        .warnings
        .iter()
        .find(|w| w.path == "services[1].port")
        .unwrap_or_else(|| panic!("{:?}", l.warnings));
    assert!(
        w.message.contains("also the port of service `a`"),
        "{}",
        w.message
    );
    assert_eq!(w.pos.line, 13, "at b's `port`");

    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("r.yml"), two("")).unwrap();
    let out = common::bin()
        .args(["submit", "r.yml", "--dry-run"])
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "submit refuses");
    assert!(String::from_utf8_lossy(&out.stderr).contains("services[1].port"));
    // Ordered: never at the same time.
    let l = parse(&two("    depends_on: [a]\n"));
    assert!(
        !l.warnings.iter().any(|w| w.path.ends_with(".port")),
        "{:?}",
        l.warnings
    );
}

/// Case 9: `--cleanenv` dropped HF_TOKEN, proxies and CUDA_VISIBLE_DEVICES unless each was
/// listed, and model caches landed in `$HOME`. The documented pass-through list crosses by name
/// (only when set; never written into the script), tokens a kind's server reads travel through
/// the secrets file (`hf_token_travels_through_the_secrets_file`), and an LLM server's cache
/// defaults to the campaign's `cache/` unless the recipe binds or sets one.
#[test]
fn containers_get_the_pass_through_env_and_a_campaign_model_cache() {
    let l = parse(&one(
        "  - service_name: llm\n    service_type: vllm\n    runtime: apptainer\n    container_image: docker://vllm/vllm-openai\n    model: m\n    environment: {https_proxy: \"http://proxy:3128\"}\n",
    ));
    let s = script(&l, &l.plan.services[0]);
    for name in factorybench::render::PASS_THROUGH_ENV {
        let line = format!(
            "if [[ -n \"${{{name}+x}}\" ]]; then export APPTAINERENV_{name}=\"${{{name}}}\"; fi"
        );
        // The recipe's own value wins: that name is not passed through.
        assert_eq!(s.contains(&line), *name != "https_proxy", "{name}:\n{s}");
    }
    assert!(!s.contains("hf_secret_value"));
    assert!(
        s.contains(&format!("args+=(--bind {CAMPAIGN_DIR}/cache:/fb-cache)")),
        "{s}"
    );
    assert!(
        s.contains("args+=(--env 'HF_HOME=/fb-cache/huggingface')"),
        "{s}"
    );
    assert!(s.contains(&format!("mkdir -p {CAMPAIGN_DIR}/cache")), "{s}");
    // What bash makes of the pass-through: set ones cross, unset ones stay unset.
    let body: String = s
        .lines()
        .filter(|l| l.trim_start().starts_with("if [[ -n \"${") && l.contains("; fi"))
        .collect::<Vec<_>>()
        .join("\n");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("set -u; HF_TOKEN=hf_secret_value; CUDA_VISIBLE_DEVICES=1; unset HTTP_PROXY; {body}\nprintf '%s|%s|%s' \"${{APPTAINERENV_HF_TOKEN-unset}}\" \"$APPTAINERENV_CUDA_VISIBLE_DEVICES\" \"${{APPTAINERENV_HTTP_PROXY-unset}}\""))
        .output()
        .unwrap();
    // A token is no pass-through any more: it crosses from the secrets file, not the job's
    // environment.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "unset|1|unset");
    // Podman: by name too.
    let l = parse(&one(
        "  - service_name: llm\n    service_type: ollama\n    runtime: podman\n    container_image: docker.io/ollama/ollama\n    model: m\n",
    ));
    let s = script(&l, &l.plan.services[0]);
    assert!(
        s.contains("if [[ -n \"${CUDA_VISIBLE_DEVICES+x}\" ]]; then args+=(--env CUDA_VISIBLE_DEVICES); fi"),
        "{s}"
    );
    assert!(!s.contains("HF_TOKEN"), "{s}");
    assert!(
        s.contains("args+=(--env 'OLLAMA_MODELS=/fb-cache/ollama')"),
        "{s}"
    );
    // The recipe's own cache: no default.
    let l = parse(&one(
        "  - service_name: llm\n    service_type: ollama\n    runtime: apptainer\n    container_image: docker://ollama/ollama\n    model: m\n    binds: [\"/project/ollama:/root/.ollama\"]\n",
    ));
    let s = script(&l, &l.plan.services[0]);
    assert!(!s.contains("/fb-cache"), "{s}");
}

/// Issue #23 case 9, the token part: `HF_TOKEN` (a fact of the vLLM, Triton and NIM kinds, as
/// NIM's `NGC_API_KEY`) set where the recipe is compiled travels through the campaign's 0600
/// secrets file into the container; the script and plan.json never hold the value, and a kind
/// that does not read it (Ollama) does not get it.
#[test]
fn hf_token_travels_through_the_secrets_file() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("r.yml"),
        one("  - service_name: llm\n    service_type: vllm\n    runtime: apptainer\n    container_image: docker://vllm/vllm-openai\n    model: m\n  - service_name: nim\n    service_type: nim\n    runtime: podman\n    container_image: nvcr.io/nim/meta/llama-3.1-8b-instruct:latest\n    model: meta/llama-3.1-8b-instruct\n    port: 8010\n  - service_name: o\n    service_type: ollama\n    runtime: apptainer\n    container_image: docker://ollama/ollama\n    model: m\n    pull_model: true\n    port: 11500\n"),
    )
    .unwrap();
    let out = common::bin()
        .args(["compile", "r.yml", "--out", "c"])
        .env("HF_TOKEN", "hf_from_the_login_shell")
        .env("NGC_API_KEY", "nvapi-from-the-login-shell")
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = t.path().join("c");
    let secrets = std::fs::read_to_string(c.join("secrets/llm.env")).unwrap();
    assert!(
        secrets.contains("HF_TOKEN=hf_from_the_login_shell"),
        "{secrets}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(c.join("secrets/llm.env"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let nim = std::fs::read_to_string(c.join("secrets/nim.env")).unwrap();
    assert!(
        nim.contains("NGC_API_KEY=nvapi-from-the-login-shell"),
        "{nim}"
    );
    assert!(nim.contains("HF_TOKEN=hf_from_the_login_shell"), "{nim}");
    assert!(
        !c.join("secrets/o.env").exists(),
        "ollama reads no HF token"
    );
    let script = std::fs::read_to_string(c.join("scripts/llm.sbatch")).unwrap();
    assert!(
        script.contains("export APPTAINERENV_HF_TOKEN=\"${HF_TOKEN}\""),
        "{script}"
    );
    let nim_script = std::fs::read_to_string(c.join("scripts/nim.sbatch")).unwrap();
    assert!(nim_script.contains("NGC_API_KEY"), "{nim_script}");
    for f in [
        "scripts/llm.sbatch",
        "scripts/nim.sbatch",
        "scripts/o.sbatch",
        "plan.json",
    ] {
        let text = std::fs::read_to_string(c.join(f)).unwrap();
        assert!(!text.contains("from_the_login_shell"), "{f}: {text}");
    }
}

/// Case 9: `validate` says when an Ollama model must be pulled (a container with no model store
/// of the recipe's and `pull_model: false` fails at setup, after the queue wait).
#[test]
fn validate_says_when_an_ollama_model_must_be_pulled() {
    let svc = |extra: &str| {
        one(&format!(
            "  - service_name: o\n    service_type: ollama\n    runtime: apptainer\n    container_image: docker://ollama/ollama\n    model: llama3\n{extra}"
        ))
    };
    let l = parse(&svc(""));
    assert!(
        l.warnings
            .iter()
            .any(|w| w.path == "services[0].pull_model"
                && w.message.contains("`llama3` must be pulled")),
        "{:?}",
        l.warnings
    );
    for extra in [
        "    pull_model: true\n",
        "    binds: [\"/p/ollama:/root/.ollama\"]\n",
    ] {
        let l = parse(&svc(extra));
        assert!(
            !l.warnings.iter().any(|w| w.path.ends_with("pull_model")),
            "{extra}"
        );
    }
}

/// Case 7 (resources): no job asked for `--cpus-per-task`, so a service and its load generator
/// shared SLURM's one default CPU without a word. A job that runs both now asks for 2 by
/// default, and `cpus_per_task: 1` there is warned about; client nodes need no default.
#[test]
fn a_service_and_its_load_generator_get_two_cpus_by_default() {
    let host = |slurm: &str| {
        one(&format!(
            "  - service_name: web\n    service_type: http\n    runtime: host\n    start_command: [srv, \"8080\"]\n    port: 8080\n    client_count: 2\n    slurm: {{{slurm}}}\n"
        ))
    };
    let l = parse(&host(""));
    let s = script(&l, &l.plan.services[0]);
    assert_eq!(sbatch(&s, "cpus-per-task").as_deref(), Some("2"));
    let l = parse(&host("cpus_per_task: 1"));
    assert!(
        l.warnings
            .iter()
            .any(|w| w.path == "services[0].slurm.cpus_per_task"),
        "{:?}",
        l.warnings
    );
    let l = parse(&host("client_nodes: 2"));
    assert_eq!(
        sbatch(&script(&l, &l.plan.services[0]), "cpus-per-task"),
        None
    );
    // An external service: only the generator runs in the job.
    let l = parse(&one(
        "  - service_name: web\n    service_type: http\n    url: http://web.site/\n",
    ));
    assert_eq!(
        sbatch(&script(&l, &l.plan.services[0]), "cpus-per-task"),
        None
    );
}

/// Case 10, the runner's side: `run --measure-from T` (what the batch step hands every client
/// node) starts the measured window exactly at T; the requests before it are warmup.
#[test]
fn measured_window_starts_at_the_instant_the_batch_step_hands_out() {
    let srv = common::Server::start(&[]);
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("r.yml"),
        one(&format!(
            "  - service_name: web\n    service_type: http\n    url: http://127.0.0.1:{}/\n    client_count: 2\n    arrival: constant\n    requests_per_second: 20\n    warmup: 0\n    duration: 4\n",
            srv.port
        )),
    )
    .unwrap();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    // Far enough ahead that the runner is surely up before it (no timing is asserted: a runner
    // arriving later would measure from its own start, and this equality would say so).
    let at = now_ns + 3_000_000_000;
    let out = common::bin()
        .args([
            "run",
            "r.yml",
            "--db",
            "c.db",
            "--no-progress",
            "--client-share",
            "0/1",
        ])
        .arg("--measure-from")
        .arg(at.to_string())
        .current_dir(t.path())
        .output()
        .unwrap();
    // What is asserted is where the window starts, not the run's verdict: on a loaded 2-core
    // machine the load generator may fall behind (exit 5, `generator_saturated`), which says
    // nothing about the instant.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            || (out.status.code() == Some(5) && stderr.contains("generator_saturated")),
        "{stderr}"
    );
    let conn = rusqlite::Connection::open(t.path().join("c.db")).unwrap();
    let (start, warm, measured): (i64, i64, i64) = conn
        .query_row(
            "SELECT measure_start_ns,
                    (SELECT COUNT(*) FROM requests WHERE warmup = 1),
                    (SELECT COUNT(*) FROM requests WHERE warmup = 0) FROM runs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        start, at,
        "the measured window starts at the instant handed out"
    );
    assert!(warm > 0, "the wait until then is warmup");
    assert!(measured > 0);
}

/// Case 7 (memory): `slurm.mem` is sbatch's `--mem`, checked as sbatch reads it, and the
/// rendered script invents no default (the cluster's DefMemPerNode / DefMemPerCPU applies;
/// `doctor` says how much, and `submit` raises a started server to its floor on the command
/// line: `slurm_memory.rs`).
#[test]
fn slurm_mem_is_rendered_as_written_and_checked_as_sbatch_reads_it() {
    let svc = |mem: &str| {
        one(&format!(
            "  - service_name: web\n    service_type: http\n    url: http://127.0.0.1:1/\n    slurm: {{{mem}}}\n"
        ))
    };
    let l = parse(&svc("mem: 16G"));
    assert_eq!(
        sbatch(&script(&l, &l.plan.services[0]), "mem").as_deref(),
        Some("16G")
    );
    let l = parse(&svc(""));
    assert_eq!(
        sbatch(&script(&l, &l.plan.services[0]), "mem"),
        None,
        "no invented default"
    );
    for bad in ["16GB", "lots", "-1", "1.5G"] {
        let e = parse_err(&svc(&format!("mem: \"{bad}\"")));
        assert!(
            e.contains("services[0].slurm.mem") && e.contains("is not a memory size"),
            "{bad}: {e}"
        );
    }
    assert_eq!(factorybench::recipe::plan::mem_mib("512"), Some(512));
    assert_eq!(factorybench::recipe::plan::mem_mib("2g"), Some(2048));
    assert_eq!(factorybench::recipe::plan::mem_mib("1T"), Some(1 << 20));
    assert_eq!(factorybench::recipe::plan::mem_mib("1536K"), Some(2));
    assert_eq!(factorybench::recipe::plan::mem_mib("0"), Some(0));
}
