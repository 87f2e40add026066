//! How each service kind is launched in a container so that it listens on the node's loopback
//! address, on the recipe's port, with the campaign's credentials.
//!
//! This is the kind-specific knowledge of the compiler; the templates in `templates/slurm/`
//! turn it into shell. Nothing here is quoted: the templates quote every value.

use crate::recipe::{Service, ServiceKind, VectorBackend, Workload};
use serde::Serialize;

/// The address every started service binds to: node-local, not reachable from other nodes.
pub const BIND_HOST: &str = "127.0.0.1";

/// One argument word: a literal, or the value of a shell variable set earlier in the script.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Word {
    /// Literal text (quoted by the template).
    pub lit: Option<String>,
    /// Name of a shell variable expanded in double quotes (`"$NAME"`).
    pub var: Option<String>,
}

impl Word {
    pub fn lit(s: impl Into<String>) -> Word {
        Word {
            lit: Some(s.into()),
            var: None,
        }
    }
    pub fn var(name: &str) -> Word {
        Word {
            lit: None,
            var: Some(name.to_string()),
        }
    }
}

/// Kind-specific launch settings for a containerised service.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Launch {
    /// Non-secret environment for the container (the recipe's `environment` wins).
    pub env: Vec<(String, String)>,
    /// Container environment taken from a secret variable of the script:
    /// (container variable, script variable holding the value).
    pub secret_env: Vec<(String, String)>,
    /// Arguments after the image (the image's entrypoint receives them).
    pub args: Vec<Word>,
    /// Node-local scratch directories bound into the container: (name under $FB_SCRATCH, path
    /// inside the container).
    pub scratch: Vec<(String, String)>,
    /// The image needs a writable overlay (Apptainer `--writable-tmpfs`).
    pub writable_tmpfs: bool,
}

/// The port the service listens on: `port`, else the port of its URL, else the kind's default.
pub fn listen_port(svc: &Service) -> Option<u16> {
    if let Some(p) = svc.port {
        return Some(p);
    }
    let url_port = svc.base_url().and_then(|u| {
        let rest = u.split_once("://")?.1;
        let hostport = rest.split(['/', '?', '#']).next()?;
        let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
        hostport.rsplit_once(':')?.1.parse::<u16>().ok()
    });
    url_port.or(match &svc.workload {
        Workload::Database(d) => Some(d.port),
        Workload::Vectordb(v) => v.port.or(match v.backend {
            VectorBackend::Chromadb => Some(8000),
            VectorBackend::Weaviate => Some(8080),
            VectorBackend::Faiss => None,
        }),
        _ => match svc.kind {
            ServiceKind::Ollama => Some(11434),
            ServiceKind::Vllm | ServiceKind::Triton => Some(8000),
            ServiceKind::S3 => Some(9000),
            _ => None,
        },
    })
}

fn has_env(svc: &Service, name: &str) -> bool {
    svc.container.env.iter().any(|e| e.name == name)
}

/// Launch settings for `svc` (used for the `apptainer` and `podman` runtimes; the `host`
/// runtime only gets [`Launch::env`], its `start_command` is the user's).
/// `model_var` names the script variable holding the model when a sweep varies it.
pub fn launch(svc: &Service, model_var: Option<&str>) -> Launch {
    let mut l = Launch::default();
    let port = listen_port(svc);
    let p = port.map(|p| p.to_string()).unwrap_or_default();
    let model_word = |m: &str| match model_var {
        Some(v) => Word::var(v),
        None => Word::lit(m),
    };
    match &svc.workload {
        Workload::Llm(llm) => match svc.kind {
            ServiceKind::Ollama => {
                if port.is_some() {
                    l.env
                        .push(("OLLAMA_HOST".into(), format!("{BIND_HOST}:{p}")));
                }
                l.args.push(Word::lit("serve"));
            }
            ServiceKind::Vllm => {
                l.args.extend([Word::lit("--host"), Word::lit(BIND_HOST)]);
                if port.is_some() {
                    l.args.extend([Word::lit("--port"), Word::lit(&p)]);
                }
                l.args
                    .extend([Word::lit("--model"), model_word(&llm.model)]);
                if llm.api_key.is_some() {
                    l.secret_env
                        .push(("VLLM_API_KEY".into(), "FB_API_KEY".into()));
                }
            }
            ServiceKind::Triton => {
                l.args.extend([
                    Word::lit("tritonserver"),
                    Word::lit("--model-repository=/models"),
                    Word::lit(format!("--http-address={BIND_HOST}")),
                ]);
                if port.is_some() {
                    l.args.push(Word::lit(format!("--http-port={p}")));
                }
                l.args.extend([
                    Word::lit("--allow-grpc=false"),
                    Word::lit("--allow-metrics=false"),
                ]);
            }
            _ => {}
        },
        Workload::Vectordb(v) => match v.backend {
            VectorBackend::Chromadb => {
                l.args
                    .extend(["run", "--host", BIND_HOST].into_iter().map(Word::lit));
                if port.is_some() {
                    l.args.extend([Word::lit("--port"), Word::lit(&p)]);
                }
                l.args.extend([Word::lit("--path"), Word::lit("/data")]);
                l.scratch.push(("data".into(), "/data".into()));
            }
            VectorBackend::Weaviate => {
                for (k, v) in [
                    ("PERSISTENCE_DATA_PATH", "/var/lib/weaviate"),
                    ("AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED", "true"),
                    ("DEFAULT_VECTORIZER_MODULE", "none"),
                    ("CLUSTER_HOSTNAME", "node1"),
                ] {
                    l.env.push((k.into(), v.into()));
                }
                l.args
                    .extend(["--host", BIND_HOST].into_iter().map(Word::lit));
                if port.is_some() {
                    l.args.extend([Word::lit("--port"), Word::lit(&p)]);
                }
                l.args
                    .extend(["--scheme", "http"].into_iter().map(Word::lit));
                l.scratch.push(("data".into(), "/var/lib/weaviate".into()));
            }
            VectorBackend::Faiss => {}
        },
        Workload::Database(d) => {
            l.env.push(("POSTGRES_USER".into(), d.user.clone()));
            l.env.push(("POSTGRES_DB".into(), d.database.clone()));
            l.env
                .push(("PGDATA".into(), "/var/lib/postgresql/data/pgdata".into()));
            if d.password.is_some() {
                l.secret_env
                    .push(("POSTGRES_PASSWORD".into(), "FB_DB_PASSWORD".into()));
            }
            l.args.extend(
                ["postgres", "-c", &format!("listen_addresses={BIND_HOST}")]
                    .into_iter()
                    .map(Word::lit),
            );
            if port.is_some() {
                l.args.extend([Word::lit("-p"), Word::lit(&p)]);
            }
            l.scratch
                .push(("pgdata".into(), "/var/lib/postgresql/data".into()));
            l.scratch
                .push(("pgrun".into(), "/var/run/postgresql".into()));
        }
        Workload::S3(_) => {
            l.secret_env
                .push(("MINIO_ROOT_USER".into(), "FB_S3_ACCESS_KEY".into()));
            l.secret_env
                .push(("MINIO_ROOT_PASSWORD".into(), "FB_S3_SECRET_KEY".into()));
            l.args.extend([Word::lit("server"), Word::lit("/data")]);
            if let Some(port) = port {
                l.args.extend([
                    Word::lit("--address"),
                    Word::lit(format!("{BIND_HOST}:{port}")),
                ]);
                if port < u16::MAX {
                    l.args.extend([
                        Word::lit("--console-address"),
                        Word::lit(format!("{BIND_HOST}:{}", port + 1)),
                    ]);
                }
            }
            l.scratch.push(("data".into(), "/data".into()));
        }
        Workload::FileStorage(_) | Workload::Http(_) => {}
    }
    // The recipe's own `environment` wins over the kind's defaults.
    l.env.retain(|(k, _)| !has_env(svc, k));
    l.secret_env.retain(|(k, _)| !has_env(svc, k));
    l
}
