//! One descriptor per service kind and per vector backend: everything the rest of the crate
//! needs to know about it, in one place (as ripgrep keeps everything about a flag in one
//! `defs.rs` entry).
//!
//! A descriptor gives the `service_type` (or `backend`) spellings, the recipe keys, the default
//! port, the readiness check and the container launch arguments. The recipe decoder
//! ([`crate::recipe::decode`]) reads the names, keys and default port (the endpoint is resolved
//! once, at plan time, into [`crate::recipe::Endpoint`]); the compiler ([`crate::render`]) reads
//! the launch arguments; `factorybench ready` ([`crate::runner::ready`]) reads the health check.
//! The client constructor of each kind sits beside its client in `runner/clients/`
//! (`make_client`, and `vector::make` for the vector backends).
//!
//! Adding a service kind or a vector backend: see `docs/adding-a-service-kind.md`.

pub mod vector;

use crate::recipe::{Service, ServiceKind, Workload};
use serde::Serialize;

pub use vector::{VectorBackend, VectorBackendSpec};

/// The address every started service binds to: node-local, not reachable from other nodes.
pub const BIND_HOST: &str = "127.0.0.1";

/// One argument word: a literal, or the value of a shell variable set earlier in the script.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Word {
    /// Literal text (quoted by the template).
    pub lit: Option<String>,
    /// Name of a shell variable expanded in double quotes (`"$NAME"`); with `lit` too, the
    /// word is `lit` followed by the variable's value, then `suffix`.
    pub var: Option<String>,
    /// Literal text after the variable (only with `var`).
    pub suffix: Option<String>,
}

impl Word {
    /// This word with every `from` in its literal text replaced by the value of shell variable
    /// `var` (only the first occurrence; the bind address appears once per word).
    pub fn with_var_for(self, from: &str, var: &str) -> Word {
        match (&self.lit, &self.var) {
            (Some(l), None) if l.contains(from) => {
                let (pre, post) = l.split_once(from).expect("contains");
                Word {
                    lit: Some(pre.to_string()),
                    var: Some(var.to_string()),
                    suffix: Some(post.to_string()),
                }
            }
            _ => self,
        }
    }
    pub fn lit(s: impl Into<String>) -> Word {
        Word {
            lit: Some(s.into()),
            var: None,
            suffix: None,
        }
    }
    pub fn var(name: &str) -> Word {
        Word {
            lit: None,
            var: Some(name.to_string()),
            suffix: None,
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

/// What a launch function gets besides the service.
pub struct LaunchCtx<'a> {
    /// The resolved port ([`crate::recipe::Endpoint::port`]).
    pub port: Option<u16>,
    /// The script variable holding the model when a sweep varies it.
    pub model_var: Option<&'a str>,
}

impl LaunchCtx<'_> {
    /// The port as an argument word (empty when there is none).
    pub fn port_str(&self) -> String {
        self.port.map(|p| p.to_string()).unwrap_or_default()
    }
}

/// Launch settings of a kind or backend (the `apptainer` / `podman` runtimes).
pub type LaunchFn = fn(&Service, &LaunchCtx) -> Launch;

fn no_launch(_: &Service, _: &LaunchCtx) -> Launch {
    Launch::default()
}

/// How `factorybench ready` decides that a service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// `GET {endpoint url}{path}` answers 2xx; with `bearer`, the recipe's `api_key` is sent.
    HttpOk { path: &'static str, bearer: bool },
    /// `GET` of the workload's own URL (S3 `endpoint_url`, HTTP `url`) gets any HTTP response.
    HttpAny,
    /// A PostgreSQL server completes the startup handshake up to authentication.
    Postgres,
    /// The workload's base path exists or can be created.
    Path,
    /// Nothing to wait for (an in-process backend).
    Nothing,
}

/// The server side of a kind or backend.
pub struct Server {
    /// Port used when neither `port` nor the URL gives one.
    pub default_port: Option<u16>,
    pub health: Health,
    pub launch: LaunchFn,
}

/// Everything about one `service_type`.
pub struct KindSpec {
    pub kind: ServiceKind,
    /// `service_type` spellings; the first is the canonical one.
    pub names: &'static [&'static str],
    /// The kind's recipe keys (besides [`COMMON_SERVICE_KEYS`]).
    pub recipe_keys: &'static [&'static str],
    /// The server; `None` for `vectordb`, whose backends each have one ([`VectorBackendSpec`]).
    pub server: Option<Server>,
}

pub const COMMON_SERVICE_KEYS: &[&str] = &[
    "service_name",
    "service_type",
    "runtime",
    "container_image",
    "start_command",
    "port",
    "service_url",
    "client_count",
    "requests_per_second",
    "duration",
    "arrival",
    "warmup",
    "requests",
    "seed",
    "max_error_rate",
    "timeout",
    "max_in_flight",
    "connections_per_client",
    "slurm",
    "environment",
    "binds",
    "container_args",
    "readiness_timeout",
    "depends_on",
    "sweep",
    "compare_thresholds",
    "compare_min_change",
    "capacity_search",
];
pub const LLM_KEYS: &[&str] = &[
    "model",
    "api",
    "prompt",
    "output_tokens",
    "max_tokens",
    "ignore_eos",
    "temperature",
    "slo",
    "pull_model",
    "api_key",
    "api_key_env",
    "api_key_file",
    // Triton tensor inference (`api: tensor`).
    "batch_size",
    "images",
    "tensor_encoding",
];
pub const VECTORDB_KEYS: &[&str] = &[
    "backend",
    "host",
    "collection_name",
    "dimension",
    "operation_mix",
    "batch_size",
    "search_k",
    "vectors",
    "dataset_size",
    "recall_queries",
    "index",
];
pub const DATABASE_KEYS: &[&str] = &[
    "backend",
    "host",
    "database",
    "user",
    "password",
    "password_env",
    "password_file",
    "operation_mix",
    "batch_size",
    "table_name",
    "seed_rows",
    "keep_table",
];
pub const S3_KEYS: &[&str] = &[
    "endpoint_url",
    "access_key",
    "access_key_env",
    "access_key_file",
    "secret_key",
    "secret_key_env",
    "secret_key_file",
    "bucket_name",
    "region",
    "operation_mix",
    "object_sizes",
    "addressing",
    "cleanup",
];
pub const FILE_KEYS: &[&str] = &[
    "base_path",
    "operation_mix",
    "file_sizes",
    "use_direct_io",
    "sync_mode",
    "working_set_files",
    "io_size",
    "io_engine",
];
pub const HTTP_KEYS: &[&str] = &["url", "method", "headers", "body", "expect_status"];

/// Every kind, in [`ServiceKind::ALL`] order.
pub static KINDS: [KindSpec; 8] = [
    KindSpec {
        kind: ServiceKind::Ollama,
        names: &["ollama"],
        recipe_keys: LLM_KEYS,
        server: Some(Server {
            default_port: Some(11434),
            health: Health::HttpOk {
                path: "/api/tags",
                bearer: false,
            },
            launch: launch_ollama,
        }),
    },
    KindSpec {
        kind: ServiceKind::Vllm,
        names: &["vllm", "openai"],
        recipe_keys: LLM_KEYS,
        server: Some(Server {
            default_port: Some(8000),
            health: Health::HttpOk {
                path: "/v1/models",
                bearer: true,
            },
            launch: launch_vllm,
        }),
    },
    KindSpec {
        kind: ServiceKind::Triton,
        names: &["triton"],
        recipe_keys: LLM_KEYS,
        server: Some(Server {
            default_port: Some(8000),
            health: Health::HttpOk {
                path: "/v2/health/ready",
                bearer: false,
            },
            launch: launch_triton,
        }),
    },
    KindSpec {
        kind: ServiceKind::Vectordb,
        names: &["vectordb"],
        recipe_keys: VECTORDB_KEYS,
        server: None,
    },
    KindSpec {
        kind: ServiceKind::Database,
        names: &["database"],
        recipe_keys: DATABASE_KEYS,
        server: Some(Server {
            default_port: Some(5432),
            health: Health::Postgres,
            launch: launch_postgres,
        }),
    },
    KindSpec {
        kind: ServiceKind::S3,
        names: &["s3"],
        recipe_keys: S3_KEYS,
        server: Some(Server {
            default_port: Some(9000),
            health: Health::HttpAny,
            launch: launch_minio,
        }),
    },
    KindSpec {
        kind: ServiceKind::FileStorage,
        names: &["file_storage"],
        recipe_keys: FILE_KEYS,
        server: Some(Server {
            default_port: None,
            health: Health::Path,
            launch: no_launch,
        }),
    },
    KindSpec {
        kind: ServiceKind::Http,
        names: &["http"],
        recipe_keys: HTTP_KEYS,
        server: Some(Server {
            default_port: None,
            health: Health::HttpAny,
            launch: no_launch,
        }),
    },
];

impl ServiceKind {
    /// This kind's descriptor.
    pub fn spec(self) -> &'static KindSpec {
        KINDS
            .iter()
            .find(|s| s.kind == self)
            .expect("every kind has a descriptor")
    }
}

/// The server of `kind` with workload `workload` (a vector database's is its backend's).
pub fn server(kind: ServiceKind, workload: Option<&Workload>) -> Option<&'static Server> {
    match (workload, &kind.spec().server) {
        (Some(Workload::Vectordb(v)), _) => Some(&v.backend.spec().server),
        (_, Some(s)) => Some(s),
        (_, None) => None,
    }
}

/// The server of a decoded service.
pub fn server_of(svc: &Service) -> &'static Server {
    server(svc.kind, Some(&svc.workload)).expect("a decoded service has a server descriptor")
}

/// Every `service_type` spelling with its kind, in descriptor order.
pub fn service_type_names() -> Vec<(&'static str, ServiceKind)> {
    KINDS
        .iter()
        .flat_map(|s| s.names.iter().map(move |n| (*n, s.kind)))
        .collect()
}

/// The kinds owning `key`, as `service_type` names joined by `|` (first group that has it),
/// for "it belongs to `service_type: …`".
pub fn owner_of_key(key: &str) -> Option<String> {
    let spec = KINDS.iter().find(|s| s.recipe_keys.contains(&key))?;
    let names: Vec<&str> = KINDS
        .iter()
        .filter(|s| s.recipe_keys == spec.recipe_keys)
        .map(|s| s.names[0])
        .collect();
    Some(names.join("|"))
}

// ---------- launch arguments of each kind ----------

fn model_word(svc: &Service, cx: &LaunchCtx) -> Word {
    let model = match &svc.workload {
        Workload::Llm(l) => l.model.as_str(),
        Workload::Tensor(t) => t.model.as_str(),
        _ => "",
    };
    match cx.model_var {
        Some(v) => Word::var(v),
        None => Word::lit(model),
    }
}

fn launch_ollama(_: &Service, cx: &LaunchCtx) -> Launch {
    let mut l = Launch::default();
    if cx.port.is_some() {
        l.env.push((
            "OLLAMA_HOST".into(),
            format!("{BIND_HOST}:{}", cx.port_str()),
        ));
    }
    l.args.push(Word::lit("serve"));
    l
}

fn launch_vllm(svc: &Service, cx: &LaunchCtx) -> Launch {
    let mut l = Launch::default();
    l.args.extend([Word::lit("--host"), Word::lit(BIND_HOST)]);
    if cx.port.is_some() {
        l.args
            .extend([Word::lit("--port"), Word::lit(cx.port_str())]);
    }
    l.args.extend([Word::lit("--model"), model_word(svc, cx)]);
    if matches!(&svc.workload, Workload::Llm(llm) if llm.api_key.is_some()) {
        l.secret_env
            .push(("VLLM_API_KEY".into(), "FB_API_KEY".into()));
    }
    l
}

fn launch_triton(svc: &Service, cx: &LaunchCtx) -> Launch {
    let mut l = Launch::default();
    l.args.push(Word::lit("tritonserver"));
    // `container_args` follow these arguments; a repository given there replaces the default.
    let own_repo = svc
        .container
        .extra_args
        .iter()
        .any(|a| a.starts_with("--model-repository"));
    if !own_repo {
        l.args.push(Word::lit("--model-repository=/models"));
    }
    l.args
        .push(Word::lit(format!("--http-address={BIND_HOST}")));
    if cx.port.is_some() {
        l.args
            .push(Word::lit(format!("--http-port={}", cx.port_str())));
    }
    l.args.extend([
        Word::lit("--allow-grpc=false"),
        Word::lit("--allow-metrics=false"),
    ]);
    l
}

fn launch_postgres(svc: &Service, cx: &LaunchCtx) -> Launch {
    let mut l = Launch::default();
    let Workload::Database(d) = &svc.workload else {
        return l;
    };
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
    if cx.port.is_some() {
        l.args.extend([Word::lit("-p"), Word::lit(cx.port_str())]);
    }
    l.scratch
        .push(("pgdata".into(), "/var/lib/postgresql/data".into()));
    l.scratch
        .push(("pgrun".into(), "/var/run/postgresql".into()));
    l
}

fn launch_minio(_: &Service, cx: &LaunchCtx) -> Launch {
    let mut l = Launch::default();
    l.secret_env
        .push(("MINIO_ROOT_USER".into(), "FB_S3_ACCESS_KEY".into()));
    l.secret_env
        .push(("MINIO_ROOT_PASSWORD".into(), "FB_S3_SECRET_KEY".into()));
    l.args.extend([Word::lit("server"), Word::lit("/data")]);
    if let Some(port) = cx.port {
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
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_descriptor_in_all_order() {
        let kinds: Vec<ServiceKind> = KINDS.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, ServiceKind::ALL.to_vec());
        for s in &KINDS {
            assert_eq!(s.names[0], s.kind.as_str());
        }
    }

    #[test]
    fn key_owners_group_the_llm_kinds() {
        assert_eq!(owner_of_key("model").as_deref(), Some("ollama|vllm|triton"));
        assert_eq!(owner_of_key("endpoint_url").as_deref(), Some("s3"));
        assert_eq!(owner_of_key("backend").as_deref(), Some("vectordb"));
        assert_eq!(owner_of_key("nope"), None);
    }
}
