//! Service kinds: one [`Kind`] trait object per `service_type`, all of them in one registry,
//! [`KINDS`] (as ripgrep lists its flags in `crates/core/flags/defs.rs`); vector backends the
//! same one level down ([`vector::BACKENDS`]).
//!
//! A kind answers everything the crate needs to know about it:
//!
//! | fact                                   | method                         | read by |
//! |----------------------------------------|--------------------------------|---------|
//! | `service_type` spellings, recipe keys  | [`Kind::names`], [`Kind::recipe_keys`] | the recipe decoder |
//! | how its keys are decoded, checked      | [`Kind::decoder`], [`Kind::checks`], [`Kind::llm`] | `recipe::decode` (one exhaustive `match` per enum) |
//! | `service_url` schemes                  | [`Kind::url_schemes`]          | the recipe decoder |
//! | default port, health probe, launch     | [`Kind::server`] ([`Server`])  | `Endpoint::resolve`, `runner::ready`, `render::launch` |
//! | bind address: arguments *and* env      | [`Server::launch`] writes [`BIND_HOST`] | `render` rewrites both for multi-node jobs |
//! | secrets                                | [`Workload::secrets`], [`Kind::ambient_secrets`] | `Service::secrets`, the decoder |
//! | model cache                            | [`Kind::model_cache`]          | `render` |
//! | GPU needs, doctor checks               | [`Kind::gpu`], [`Kind::doctor`] | `doctor` |
//! | client                                 | its [`Workload`] variant       | `runner::clients::make_client` (exhaustive `match`) |
//!
//! This module imports nothing from the layers above it (`recipe`, `render`, `runner`,
//! `doctor`): it carries data, and each higher layer turns the data into behaviour with an
//! exhaustive `match` over one of the enums here ([`ServiceKind`], [`Decoder`], [`Check`],
//! [`DoctorRule`], [`Health`], [`Workload`]) — never a `_ =>` arm, so that the compiler points
//! at every site a new variant needs. The plan's workload types live here too
//! ([`workload`], re-exported by `recipe::plan`).
//!
//! Adding a service kind or a vector backend: see `docs/adding-a-service-kind.md`.

mod data;
mod llm;
pub mod vector;
pub mod workload;

use serde::Serialize;
use std::fmt;

pub use vector::{BackendKind, VectorBackend};
pub use workload::{LlmApi, Secret, Workload};

pub use data::{DATABASE_KEYS, FILE_KEYS, HTTP_KEYS, S3_KEYS, VECTORDB_KEYS};
pub use llm::LLM_KEYS;

/// The address every started service binds to: node-local, not reachable from other nodes.
pub const BIND_HOST: &str = "127.0.0.1";

/// The `service_type` of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    Ollama,
    Vllm,
    Triton,
    Vectordb,
    Database,
    S3,
    FileStorage,
    Http,
    /// NVIDIA NIM: an OpenAI-compatible LLM container.
    Nim,
}

impl ServiceKind {
    /// Every kind, in [`KINDS`] order.
    pub const ALL: [ServiceKind; 9] = [
        ServiceKind::Ollama,
        ServiceKind::Vllm,
        ServiceKind::Triton,
        ServiceKind::Vectordb,
        ServiceKind::Database,
        ServiceKind::S3,
        ServiceKind::FileStorage,
        ServiceKind::Http,
        ServiceKind::Nim,
    ];

    /// This kind's entry in [`KINDS`].
    pub fn spec(self) -> &'static dyn Kind {
        match self {
            ServiceKind::Ollama => &llm::Ollama,
            ServiceKind::Vllm => &llm::Vllm,
            ServiceKind::Triton => &llm::Triton,
            ServiceKind::Vectordb => &data::Vectordb,
            ServiceKind::Database => &data::Database,
            ServiceKind::S3 => &data::S3,
            ServiceKind::FileStorage => &data::FileStorage,
            ServiceKind::Http => &data::Http,
            ServiceKind::Nim => &llm::Nim,
        }
    }

    /// The canonical `service_type` name (as serialised).
    pub fn as_str(self) -> &'static str {
        self.spec().names()[0]
    }

    /// An LLM server (the LLM recipe keys, longer default timeouts, `model` sweeps).
    pub fn is_llm(self) -> bool {
        self.spec().llm().is_some()
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything about one `service_type`. Implementations are unit structs in `kinds/llm.rs`
/// and `kinds/data.rs`; [`KINDS`] lists them.
pub trait Kind: Sync {
    /// Which kind this is.
    fn kind(&self) -> ServiceKind;
    /// `service_type` spellings; the first is the canonical one.
    fn names(&self) -> &'static [&'static str];
    /// The kind's recipe keys (besides [`COMMON_SERVICE_KEYS`]).
    fn recipe_keys(&self) -> &'static [&'static str];
    /// Which decoder of `recipe::decode` reads the kind's keys into a [`Workload`].
    fn decoder(&self) -> Decoder;
    /// The server; `None` for `vectordb`, whose backends each have one ([`BackendKind`]).
    fn server(&self) -> Option<&'static Server>;
    /// Schemes `service_url` may use.
    fn url_schemes(&self) -> &'static [&'static str] {
        &["http", "https"]
    }
    /// Checks across keys, run after the workload is decoded.
    fn checks(&self) -> &'static [Check] {
        &[]
    }
    /// The LLM facts of an LLM server.
    fn llm(&self) -> Option<&'static LlmFacts> {
        None
    }
    /// Environment variables the started server reads when they are set where the job is
    /// compiled (tokens): each travels, as a secret, through the campaign's 0600 secrets file,
    /// unless the recipe's `environment` sets it.
    fn ambient_secrets(&self) -> &'static [AmbientSecret] {
        &[]
    }
    /// The server's model cache, put under the campaign directory by default.
    fn model_cache(&self) -> Option<&'static ModelCache> {
        None
    }
    /// Whether a started server needs a GPU.
    fn gpu(&self) -> GpuNeed {
        GpuNeed::None
    }
    /// The kind's own `factorybench doctor` checks.
    fn doctor(&self) -> &'static [DoctorRule] {
        &[]
    }
    /// Whether a closed loop of this kind runs on client threads (`client_threads`): its
    /// client's `connect` and workers are self-contained, each worker owning its sockets and
    /// needing no task, pool or other state of the runtime that ran `setup`. Each client thread
    /// is a single-threaded runtime that opens and drives its share of the clients (pgbench's
    /// and wrk's threads): a request's wake-ups stay on its thread, with no hand-off between
    /// a shared runtime's workers.
    fn client_threads(&self) -> bool {
        false
    }
    /// The least memory a started server should get before `doctor` warns, MiB: an LLM
    /// server's model weights pass through host memory ([`LLM_MEM_FLOOR_MIB`]).
    fn mem_floor_mib(&self) -> Option<u64> {
        self.llm().map(|_| LLM_MEM_FLOOR_MIB)
    }
}

/// The least memory a started LLM server should get before `doctor` warns, MiB.
pub const LLM_MEM_FLOOR_MIB: u64 = 16 * 1024;
/// The least memory a started vector database should get before `doctor` warns, MiB.
pub const VECTORDB_MEM_FLOOR_MIB: u64 = 2 * 1024;

/// The registry: every kind, in [`ServiceKind::ALL`] order.
pub static KINDS: [&dyn Kind; 9] = [
    &llm::Ollama,
    &llm::Vllm,
    &llm::Triton,
    &data::Vectordb,
    &data::Database,
    &data::S3,
    &data::FileStorage,
    &data::Http,
    &llm::Nim,
];

/// How the recipe decoder reads a kind's keys (`recipe::decode::decode_workload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoder {
    /// `model`, `api`, `prompt`, ... into [`Workload::Llm`].
    Llm,
    /// Triton: [`Workload::Tensor`] with `api: tensor` (or tensor keys), else [`Decoder::Llm`].
    LlmOrTensor,
    Vector,
    Database,
    S3,
    FileStorage,
    Http,
}

/// A check across keys (`recipe::decode::consistency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `service_url`, `port`, credentials and the container's `POSTGRES_*` agree.
    ReconcileDatabase,
    /// Triton's model repository is bound and `container_args` do not fight the launch.
    TritonRepository,
    /// A Faiss index can run the mix.
    FaissIndex,
    /// An Ollama container without a bound store must pull its model (a warning).
    OllamaModelStore,
}

/// A kind's own `factorybench doctor` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoctorRule {
    /// Triton's model repository is bound.
    TritonModelRepository,
    /// The model is in Ollama's bound store (or pulled).
    OllamaModel,
    /// The kind's required [`AmbientSecret`]s are set (or given in `environment`).
    AmbientSecrets,
}

/// What a started server needs of the node's GPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuNeed {
    /// It cannot serve without one: `doctor` fails a job that requests none.
    Required,
    /// It runs on the CPU, unrepresentatively: `doctor` warns.
    Recommended,
    None,
}

/// An environment variable of the submitting environment that the server reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmbientSecret {
    pub name: &'static str,
    /// `doctor` warns when it is set nowhere.
    pub expected: bool,
}

/// Where a server keeps downloaded models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelCache {
    /// The variable that points the server at its cache.
    pub var: &'static str,
    /// Its directory under the campaign's cache mount.
    pub dir: &'static str,
    /// Container paths whose bind in the recipe means "the recipe brings its own cache".
    pub own_cache_paths: &'static [&'static str],
}

/// What the LLM decoder needs to know of an LLM server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmFacts {
    /// The API without an `api` key.
    pub default_api: LlmApi,
    /// What `api: generate` means.
    pub generate: LlmApi,
    /// What `api: chat` means.
    pub chat: LlmApi,
    /// The APIs the server serves.
    pub apis: &'static [LlmApi],
}

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
    /// Non-secret environment for the container (the recipe's `environment` wins). A value
    /// holding [`BIND_HOST`] names the bind address: a multi-node job sets it from the node's
    /// address instead.
    pub env: Vec<(String, String)>,
    /// Container environment taken from a secret variable of the script:
    /// (container variable, script variable holding the value).
    pub secret_env: Vec<(String, String)>,
    /// Arguments after the image (the image's entrypoint receives them). A word holding
    /// [`BIND_HOST`] names the bind address, rewritten as the environment is.
    pub args: Vec<Word>,
    /// Node-local scratch directories bound into the container: (name under $FB_SCRATCH, path
    /// inside the container).
    pub scratch: Vec<(String, String)>,
    /// The image needs a writable overlay (Apptainer `--writable-tmpfs`).
    pub writable_tmpfs: bool,
}

/// What a launch function gets.
pub struct LaunchCtx<'a> {
    /// The resolved port (`Endpoint::port`).
    pub port: Option<u16>,
    /// The script variable holding the model when a sweep varies it.
    pub model_var: Option<&'a str>,
    /// The service's workload.
    pub workload: &'a Workload,
    /// The recipe's `container_args` (they follow the kind's arguments).
    pub extra_args: &'a [String],
}

impl LaunchCtx<'_> {
    /// The port as an argument word (empty when there is none).
    pub fn port_str(&self) -> String {
        self.port.map(|p| p.to_string()).unwrap_or_default()
    }

    /// The model as an argument word: the sweep's variable, or the recipe's `model`.
    pub fn model_word(&self) -> Word {
        match self.model_var {
            Some(v) => Word::var(v),
            None => Word::lit(self.workload.model().unwrap_or_default()),
        }
    }
}

/// Launch settings of a kind or backend (the `apptainer` / `podman` runtimes).
pub type LaunchFn = fn(&LaunchCtx) -> Launch;

fn no_launch(_: &LaunchCtx) -> Launch {
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

impl Health {
    /// The path of an [`Health::HttpOk`] check.
    pub fn http_path(self) -> Option<&'static str> {
        match self {
            Health::HttpOk { path, .. } => Some(path),
            Health::HttpAny | Health::Postgres | Health::Path | Health::Nothing => None,
        }
    }
}

/// The server side of a kind or backend.
pub struct Server {
    /// Port used when neither `port` nor the URL gives one.
    pub default_port: Option<u16>,
    pub health: Health,
    pub launch: LaunchFn,
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
    "client_threads",
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

/// The server of `kind` with workload `workload` (a vector database's is its backend's).
pub fn server(kind: ServiceKind, workload: Option<&Workload>) -> Option<&'static Server> {
    match (workload, kind.spec().server()) {
        (Some(Workload::Vectordb(v)), _) => Some(v.backend.spec().server()),
        (_, Some(s)) => Some(s),
        (_, None) => None,
    }
}

/// The server of a decoded service (its kind and workload).
pub fn server_of(kind: ServiceKind, workload: &Workload) -> &'static Server {
    server(kind, Some(workload)).expect("a decoded service has a server descriptor")
}

/// Every `service_type` spelling with its kind, in registry order.
pub fn service_type_names() -> Vec<(&'static str, ServiceKind)> {
    KINDS
        .iter()
        .flat_map(|s| s.names().iter().map(move |n| (*n, s.kind())))
        .collect()
}

/// The kinds owning `key`, as `service_type` names joined by `|` (first group that has it),
/// for "it belongs to `service_type: …`".
pub fn owner_of_key(key: &str) -> Option<String> {
    let spec = KINDS.iter().find(|s| s.recipe_keys().contains(&key))?;
    let names: Vec<&str> = KINDS
        .iter()
        .filter(|s| s.recipe_keys() == spec.recipe_keys())
        .map(|s| s.names()[0])
        .collect();
    Some(names.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_entry_in_all_order() {
        let kinds: Vec<ServiceKind> = KINDS.iter().map(|s| s.kind()).collect();
        assert_eq!(kinds, ServiceKind::ALL.to_vec());
        for k in ServiceKind::ALL {
            assert_eq!(k.spec().kind(), k);
        }
        let mut names: Vec<&str> = service_type_names().iter().map(|(n, _)| *n).collect();
        let all = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all, "a service_type spelling names one kind");
    }

    #[test]
    fn key_owners_group_the_llm_kinds() {
        assert_eq!(
            owner_of_key("model").as_deref(),
            Some("ollama|vllm|triton|nim")
        );
        assert_eq!(owner_of_key("endpoint_url").as_deref(), Some("s3"));
        assert_eq!(owner_of_key("backend").as_deref(), Some("vectordb"));
        assert_eq!(owner_of_key("nope"), None);
    }
}
