//! Issue 23's conformance matrix on the rendered scripts, generated from the recipe model: every
//! service kind and vector backend ([`factorybench::kinds::KINDS`], [`BACKENDS`]) × every runtime
//! it can be started with × every placement (one node; `client_nodes: 2`; the seed's `nodes: 3` +
//! `ntasks-per-node: 1`) × the optional keys `url`, `port`, `ntasks`, `qos` present and absent
//! (and `gres` for the GPU kinds). Each script is checked for what the cluster would otherwise
//! find out after the queue wait: nodes and tasks that SLURM would not shrink, the bind address
//! reaching the server through its arguments *and* its environment, readiness and clients aimed
//! at the service node, GPU flags, argument order, `bash -n`, and `shellcheck` (one script per
//! kind × runtime × placement). The kinds with a real server here are also submitted to the
//! 3-node cluster (`slurm_matrix.rs`).

use crate::common;
use crate::placement::{sbatch, script};

use factorybench::kinds::vector::BACKENDS;
use factorybench::kinds::{VectorBackend, KINDS};
use factorybench::recipe::{self, ServiceKind};
use factorybench::runner::ready::Probe;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement {
    OneNode,
    ClientNodes2,
    SeedNodes3,
}

impl Placement {
    pub const ALL: [Placement; 3] = [
        Placement::OneNode,
        Placement::ClientNodes2,
        Placement::SeedNodes3,
    ];
    /// Nodes of the job, client nodes.
    pub fn nodes(self) -> (u32, u32) {
        match self {
            Placement::OneNode => (1, 0),
            Placement::ClientNodes2 => (3, 2),
            Placement::SeedNodes3 => (3, 2),
        }
    }
    pub fn slurm_keys(self) -> &'static str {
        match self {
            Placement::OneNode => "",
            Placement::ClientNodes2 => "client_nodes: 2, ",
            Placement::SeedNodes3 => "nodes: 3, ntasks-per-node: 1, ",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Placement::OneNode => "one-node",
            Placement::ClientNodes2 => "client-nodes-2",
            Placement::SeedNodes3 => "seed-nodes-3",
        }
    }
}

/// The optional keys of one matrix cell.
#[derive(Debug, Clone, Copy)]
pub struct Keys {
    pub url: bool,
    pub port: bool,
    pub ntasks: bool,
    pub qos: bool,
}

impl Keys {
    pub fn all() -> impl Iterator<Item = Keys> {
        (0..16u8).map(|b| Keys {
            url: b & 1 != 0,
            port: b & 2 != 0,
            ntasks: b & 4 != 0,
            qos: b & 8 != 0,
        })
    }
}

/// A kind (or vector backend) of the model with what a recipe of it needs besides the common
/// keys. Every kind and backend of the model must have one: a new kind fails this test until it
/// is added here.
struct KindFixture {
    label: &'static str,
    service_type: &'static str,
    /// Kind-specific recipe lines (each indented 4 spaces).
    lines: &'static str,
    /// Runtimes that start it (empty: nothing to start, e.g. file storage).
    runtimes: &'static [&'static str],
    default_port: Option<u16>,
    gpu: bool,
}

fn fixtures() -> Vec<KindFixture> {
    let mut out = Vec::new();
    let started: &[&str] = &["apptainer", "podman", "host"];
    for k in KINDS.iter() {
        let port = k.server().and_then(|s| s.default_port);
        match k.kind() {
            ServiceKind::Ollama => out.push(KindFixture {
                label: "ollama",
                service_type: "ollama",
                lines: "    model: smollm2:135m\n",
                runtimes: started,
                default_port: port,
                gpu: true,
            }),
            ServiceKind::Vllm => out.push(KindFixture {
                label: "vllm",
                service_type: "vllm",
                lines: "    model: m\n",
                runtimes: started,
                default_port: port,
                gpu: true,
            }),
            ServiceKind::Triton => out.push(KindFixture {
                label: "triton",
                service_type: "triton",
                lines: "    model: m\n    binds: [\"/shared/models:/models:ro\"]\n",
                runtimes: started,
                default_port: port,
                gpu: true,
            }),
            ServiceKind::Vectordb => {
                for b in BACKENDS.iter() {
                    match b.backend() {
                        // Faiss runs in-process: nothing to start or place.
                        VectorBackend::Faiss => {}
                        VectorBackend::Chromadb => out.push(KindFixture {
                            label: "chromadb",
                            service_type: "vectordb",
                            lines: "    backend: chromadb\n",
                            runtimes: started,
                            default_port: b.server().default_port,
                            gpu: false,
                        }),
                        VectorBackend::Weaviate => out.push(KindFixture {
                            label: "weaviate",
                            service_type: "vectordb",
                            lines: "    backend: weaviate\n",
                            runtimes: started,
                            default_port: b.server().default_port,
                            gpu: false,
                        }),
                    }
                }
            }
            ServiceKind::Database => out.push(KindFixture {
                label: "postgres",
                service_type: "database",
                lines: "    database: bench\n    user: bench\n",
                runtimes: started,
                default_port: port,
                gpu: false,
            }),
            ServiceKind::S3 => out.push(KindFixture {
                label: "s3",
                service_type: "s3",
                lines: "    bucket_name: bench\n",
                runtimes: started,
                default_port: port,
                gpu: false,
            }),
            ServiceKind::FileStorage => out.push(KindFixture {
                label: "file-storage",
                service_type: "file_storage",
                lines: "    base_path: /shared/fb-scratch\n",
                runtimes: &[],
                default_port: None,
                gpu: false,
            }),
            ServiceKind::Http => out.push(KindFixture {
                label: "http",
                service_type: "http",
                lines: "",
                runtimes: started,
                default_port: port,
                gpu: false,
            }),
            ServiceKind::Nim => out.push(KindFixture {
                label: "nim",
                service_type: "nim",
                lines: "    model: meta/llama-3.1-8b-instruct\n",
                runtimes: started,
                default_port: port,
                gpu: true,
            }),
        }
    }
    out
}

const PORT: u16 = 18123;

/// The recipe of one cell (a started HTTP or S3 service with neither `url` nor `port` has nowhere
/// to be reached: the validator must refuse that cell, with its location).
fn cell(f: &KindFixture, runtime: Option<&str>, p: Placement, k: Keys, gres: bool) -> String {
    let mut s = format!(
        "benchmark: {{name: matrix}}\nglobal: {{metrics_db: m.db}}\nservices:\n  - service_name: svc\n    service_type: {}\n{}",
        f.service_type, f.lines
    );
    let port = if k.port { Some(PORT) } else { f.default_port };
    match runtime {
        Some("host") => {
            s.push_str(&format!(
                "    runtime: host\n    start_command: [server, --listen, 127.0.0.1, \"{}\"]\n",
                port.unwrap_or(80)
            ));
        }
        Some(rt) => {
            s.push_str(&format!(
                "    runtime: {rt}\n    container_image: {}\n    container_args: [--extra-flag]\n",
                if rt == "apptainer" {
                    "docker://site/server:1"
                } else {
                    "docker.io/site/server:1"
                }
            ));
        }
        None => {}
    }
    if k.port {
        s.push_str(&format!("    port: {PORT}\n"));
    }
    if k.url {
        match f.service_type {
            "http" => s.push_str("    url: /\n"),
            "s3" => s.push_str(&format!(
                "    endpoint_url: http://127.0.0.1:{}\n",
                port.unwrap_or(80)
            )),
            "file_storage" => {}
            "database" => s.push_str(&format!(
                "    service_url: postgresql://127.0.0.1:{}/bench\n",
                port.unwrap_or(5432)
            )),
            _ => s.push_str(&format!(
                "    service_url: http://127.0.0.1:{}\n",
                port.unwrap_or(80)
            )),
        }
    }
    s.push_str("    client_count: 4\n    duration: 10\n");
    s.push_str(&format!(
        "    slurm: {{{}account: acct, time: \"00:10:00\"{}{}{}}}\n",
        p.slurm_keys(),
        if k.ntasks { ", ntasks: 1" } else { "" },
        if k.qos { ", qos: short" } else { "" },
        if gres {
            ", partition: gpu, gres: \"gpu:1\""
        } else {
            ""
        },
    ));
    s
}

/// The body of the script's `fb_service_start` function.
fn start_fn(script: &str) -> String {
    let start = script.find("fb_service_start() {").expect("start function");
    let end = script[start..].find("\n}\n").expect("end of function") + start;
    script[start..end].to_string()
}

#[test]
fn rendered_matrix_of_every_kind_runtime_placement_and_key() {
    let fx = fixtures();
    // The model's kinds and backends (Faiss aside) are all here.
    assert_eq!(
        fx.len(),
        KINDS.len() - 1 + BACKENDS.len() - 1,
        "a kind or backend of the model has no matrix fixture"
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut cells = 0usize;
    let mut refused = 0usize;
    let mut to_shellcheck = Vec::new();
    for f in &fx {
        let runtimes: Vec<Option<&str>> = if f.runtimes.is_empty() {
            vec![None]
        } else {
            f.runtimes.iter().map(|r| Some(*r)).collect()
        };
        for rt in &runtimes {
            for p in Placement::ALL {
                for (ki, k) in Keys::all().enumerate() {
                    for gres in [false, true].into_iter().filter(|g| !*g || f.gpu) {
                        let text = cell(f, *rt, p, k, gres);
                        let name = format!(
                            "{}-{}-{}-{ki}{}",
                            f.label,
                            rt.unwrap_or("none"),
                            p.label(),
                            if gres { "-gpu" } else { "" }
                        );
                        let parsed = recipe::parse_str(&text, Path::new("recipe.yml"));
                        if matches!(f.service_type, "http" | "s3") && !k.url && !k.port {
                            // HTTP and S3 take their address from `url`/`endpoint_url` or `port`
                            // only (no default): without either the validator refuses the cell.
                            let e = parsed.err().unwrap_or_else(|| panic!("{name}: accepted"));
                            let at = if f.service_type == "s3" {
                                "endpoint_url"
                            } else {
                                "url"
                            };
                            assert!(
                                e.to_string().contains(&format!("services[0].{at}")),
                                "{name}: refused without a location: {e}"
                            );
                            refused += 1;
                            continue;
                        }
                        let l = parsed.unwrap_or_else(|e| panic!("{name}:\n{text}\n{e}"));
                        let svc = &l.plan.services[0];
                        let s = script(&l, svc);
                        check_cell(&name, *rt, p, k, gres, svc, &s);
                        cells += 1;
                        let path = tmp.path().join(format!("{name}.sbatch"));
                        std::fs::write(&path, &s).unwrap();
                        let out = std::process::Command::new("bash")
                            .arg("-n")
                            .arg(&path)
                            .output()
                            .unwrap();
                        assert!(
                            out.status.success(),
                            "{name}: bash -n: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                        // shellcheck one script per kind × runtime × placement (GPU and keys
                        // change single lines, not the shell structure).
                        if ki == 15 {
                            to_shellcheck.push(path);
                        }
                    }
                }
            }
        }
    }
    eprintln!("rendered matrix: {cells} scripts checked, {refused} cells refused by validate, {} shellchecked", to_shellcheck.len());
    if let Some(env) = common::server("shellcheck") {
        let bin = env
            .get("FB_TEST_SHELLCHECK")
            .cloned()
            .unwrap_or_else(|| "shellcheck".into());
        let out = std::process::Command::new(bin)
            .args(["-s", "bash", "-S", "warning"])
            .args(&to_shellcheck)
            .output()
            .expect("shellcheck runs");
        assert!(
            out.status.success(),
            "shellcheck found problems:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn check_cell(
    name: &str,
    rt: Option<&str>,
    p: Placement,
    k: Keys,
    gres: bool,
    svc: &recipe::Service,
    s: &str,
) {
    // No command substitution once the signal traps are set, not even in a function body: bash
    // 5.2 aborts the script with a syntax error (exit 2, the signal lost) when a trapped signal
    // arrives while it parses one (arithmetic `$((` is not one).
    let (_, trapped) = s
        .split_once("trap 'fb_on_signal USR1' USR1")
        .unwrap_or_else(|| panic!("{name}: no USR1 trap"));
    if let Some((i, _)) = trapped
        .match_indices("$(")
        .find(|(i, _)| !trapped[*i..].starts_with("$(("))
    {
        let line = trapped[..i].lines().count();
        panic!(
            "{name}: a command substitution {line} lines after the traps: {}",
            trapped[i..].lines().next().unwrap_or("")
        );
    }
    let (nodes, client_nodes) = p.nodes();
    // A GPU service with client nodes is a heterogeneous job: the service's component (one
    // node, the GPU), then the clients' (`#SBATCH hetjob`, no GRES).
    let het = gres && client_nodes > 0 && rt.is_some();
    assert_eq!(s.contains("\n#SBATCH hetjob\n"), het, "{name}: hetjob");
    let (head, clients) = match s.split_once("\n#SBATCH hetjob\n") {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    // Nodes and tasks SLURM keeps: one task per node at least.
    assert_eq!(svc.slurm.client_nodes, client_nodes, "{name}");
    let own_nodes = if het { 1 } else { nodes };
    assert_eq!(sbatch(head, "nodes"), Some(own_nodes.to_string()), "{name}");
    let ntasks: u32 = sbatch(head, "ntasks").unwrap().parse().unwrap();
    assert!(
        ntasks >= own_nodes,
        "{name}: --ntasks={ntasks} on {own_nodes} nodes"
    );
    if let Some(c) = clients {
        assert_eq!(sbatch(c, "nodes"), Some(client_nodes.to_string()), "{name}");
        assert_eq!(
            sbatch(c, "ntasks"),
            Some(client_nodes.to_string()),
            "{name}"
        );
        assert_eq!(sbatch(c, "gres"), None, "{name}: GPUs for the clients");
        assert_eq!(sbatch(c, "account").as_deref(), Some("acct"), "{name}");
    }
    assert_eq!(sbatch(s, "qos").is_some(), k.qos, "{name}");
    assert_eq!(sbatch(s, "account").as_deref(), Some("acct"), "{name}");
    if client_nodes > 0 {
        let step = if het {
            format!("srun --het-group=1 --nodes={client_nodes} --ntasks={client_nodes} --ntasks-per-node=1")
        } else {
            format!("srun --nodes={client_nodes} --ntasks={client_nodes} --ntasks-per-node=1 --relative=1")
        };
        assert!(s.contains(&step), "{name}: no client step `{step}`");
        assert!(s.contains("--measure-from \"$fb_measure_from\""), "{name}");
    } else {
        assert!(!s.contains("\nsrun "), "{name}: client step on one node");
    }
    let started = rt.is_some();
    if started {
        let body = start_fn(s);
        if client_nodes > 0 {
            // The bind address reaches the server through its arguments and its environment as
            // the node's address; loopback nowhere in what starts it.
            assert!(
                !body.contains("127.0.0.1"),
                "{name}: loopback in the start:\n{body}"
            );
            assert!(s.contains("export FB_BIND_ADDR"), "{name}");
            assert!(
                s.contains("fb_ready_args+=(--endpoint-host \"$FB_BIND_ADDR\")"),
                "{name}"
            );
            // Readiness and clients aimed at the service node.
            let moved = svc.for_client_node(None, Some("10.9.9.9"));
            let probe = Probe::for_service(&moved).describe();
            assert!(
                !probe.contains("127.0.0.1"),
                "{name}: readiness probes {probe}"
            );
            if let Some(u) = &moved.endpoint.url {
                assert!(!u.contains("127.0.0.1"), "{name}: clients reach {u}");
            }
        } else {
            assert!(!s.contains("FB_BIND_ADDR"), "{name}");
        }
        match rt {
            Some("apptainer") => {
                assert_eq!(body.contains(" --nv"), gres, "{name}: --nv");
                assert!(body.contains("--cleanenv"), "{name}");
                let img = body
                    .find("args+=(docker://site/server:1 \"$FB_INSTANCE\"")
                    .unwrap_or_else(|| panic!("{name}: image line\n{body}"));
                let extra = body.find("args+=(--extra-flag)").expect("container_args");
                assert!(img < extra, "{name}: container_args before the image");
            }
            Some("podman") => {
                assert_eq!(
                    body.contains("--device nvidia.com/gpu=all"),
                    gres,
                    "{name}: CDI device"
                );
                let img = body
                    .find("args+=(docker.io/site/server:1")
                    .unwrap_or_else(|| panic!("{name}: image line\n{body}"));
                let extra = body.find("args+=(--extra-flag)").expect("container_args");
                assert!(img < extra, "{name}: container_args before the image");
            }
            _ => {}
        }
    }
    if gres {
        assert_eq!(sbatch(head, "gres").as_deref(), Some("gpu:1"), "{name}");
    }
}
