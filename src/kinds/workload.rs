//! What a service of each kind does when measured: the workload types of the plan, one per
//! kind family, with the secrets they carry. The recipe decoder (`recipe::decode`)
//! builds them; the clients (`runner/clients/`) run them. Re-exported by
//! `recipe::plan`.

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// Operation weights; they sum to 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mix<Op> {
    pub weights: Vec<(Op, f64)>,
}

impl<Op: Copy> Mix<Op> {
    /// Pick an operation from a uniform draw `u` in [0, 1).
    pub fn pick(&self, u: f64) -> Op {
        let mut acc = 0.0;
        for (op, w) in &self.weights {
            acc += w;
            if u < acc {
                return *op;
            }
        }
        self.weights.last().expect("validated mix is non-empty").0
    }
}

/// Payload sizes with weights; sizes in bytes (KB = KiB = 1024 bytes, as fio does).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeMix {
    pub weights: Vec<(u64, f64)>,
}

impl SizeMix {
    pub fn pick(&self, u: f64) -> u64 {
        let mut acc = 0.0;
        for (size, w) in &self.weights {
            acc += w;
            if u < acc {
                return *size;
            }
        }
        self.weights.last().expect("validated mix is non-empty").0
    }

    pub fn max_bytes(&self) -> u64 {
        self.weights.iter().map(|(s, _)| *s).max().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Workload {
    Llm(LlmWorkload),
    Vectordb(VectorDbWorkload),
    Database(DatabaseWorkload),
    S3(S3Workload),
    FileStorage(FileStorageWorkload),
    Http(HttpWorkload),
    /// Triton image (or any tensor) models through KServe v2 `/v2/models/{m}/infer`.
    Tensor(TensorWorkload),
}

impl Workload {
    /// The model a server loads (LLM and tensor workloads).
    pub fn model(&self) -> Option<&str> {
        match self {
            Workload::Llm(l) => Some(&l.model),
            Workload::Tensor(t) => Some(&t.model),
            Workload::Vectordb(_)
            | Workload::Database(_)
            | Workload::S3(_)
            | Workload::FileStorage(_)
            | Workload::Http(_) => None,
        }
    }

    /// The secrets the workload carries, each with the script variable that holds it.
    pub fn secrets(&self) -> Vec<(&'static str, &Secret)> {
        match self {
            Workload::Database(d) => d.password.iter().map(|p| ("FB_DB_PASSWORD", p)).collect(),
            Workload::S3(s) => vec![
                ("FB_S3_ACCESS_KEY", &s.access_key),
                ("FB_S3_SECRET_KEY", &s.secret_key),
            ],
            Workload::Llm(l) => l.api_key.iter().map(|k| ("FB_API_KEY", k)).collect(),
            Workload::Vectordb(_)
            | Workload::FileStorage(_)
            | Workload::Http(_)
            | Workload::Tensor(_) => Vec::new(),
        }
    }
}

// ---------- LLM ----------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LlmApi {
    /// Ollama `/api/generate`, NDJSON stream.
    OllamaGenerate,
    /// Ollama `/api/chat`, NDJSON stream.
    OllamaChat,
    /// OpenAI `/v1/completions`, SSE stream.
    Completions,
    /// OpenAI `/v1/chat/completions`, SSE stream.
    ChatCompletions,
    /// Triton generate extension `/v2/models/{m}/generate_stream` (SSE).
    TritonGenerate,
    /// KServe v2 `/v2/models/{m}/infer`.
    TritonInfer,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "dist", rename_all = "snake_case")]
pub enum TokenDist {
    Fixed { tokens: u32 },
    Uniform { min: u32, max: u32 },
    Normal { mean: f64, stddev: f64 },
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum PromptSource {
    Synthetic {
        input_tokens: TokenDist,
    },
    /// JSONL: `{"prompt": "...", "output_tokens": 128}` per line.
    File {
        path: PathBuf,
    },
}

/// Service-level objectives for goodput (a request is "good" if it meets all of them).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Slo {
    pub ttft_ms: Option<f64>,
    pub tpot_ms: Option<f64>,
    pub e2el_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LlmWorkload {
    pub api: LlmApi,
    pub model: String,
    pub prompts: PromptSource,
    pub output_tokens: TokenDist,
    pub ignore_eos: bool,
    pub temperature: f64,
    pub slo: Slo,
    /// Ollama: pull the model before the timed phase when it is missing.
    pub pull_model: bool,
    pub api_key: Option<Secret>,
}

// ---------- tensor inference (KServe v2) ----------

/// How input tensors travel in the infer request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TensorEncoding {
    /// The binary tensor extension, falling back to JSON when the server refuses it.
    Auto,
    /// The binary tensor extension (`Inference-Header-Content-Length`).
    Binary,
    /// JSON `data` arrays.
    Json,
}

/// Where the input tensors' values come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum TensorSource {
    /// Seeded random values (FP32 in [0, 1), UINT8 in 0..=255, ...).
    Random,
    /// Binary PPM (P6) / PGM (P5) images from a directory, resized to the model's input.
    Images { dir: PathBuf },
}

#[derive(Debug, Clone, Serialize)]
pub struct TensorWorkload {
    pub model: String,
    /// Inferences per request (the batch dimension of each input, when the model has one).
    pub batch_size: u32,
    pub source: TensorSource,
    pub encoding: TensorEncoding,
}

// ---------- vector DB ----------

pub use super::vector::VectorBackend;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VectorOp {
    Insert,
    Search,
    Update,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum VectorSource {
    /// Seeded random unit vectors.
    Random,
    /// `.npy` (float32, 2-D) or JSONL (one array per line) of real embeddings.
    File { path: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaissIndex {
    Flat,
    Hnsw { m: u32 },
}

#[derive(Debug, Clone, Serialize)]
pub struct VectorDbWorkload {
    pub backend: VectorBackend,
    pub collection_name: String,
    pub dimension: u32,
    pub mix: Mix<VectorOp>,
    pub batch_size: u32,
    pub search_k: u32,
    pub vectors: VectorSource,
    /// Vectors loaded before the timed phase, so searches hit real data.
    pub dataset_size: u64,
    /// Searches sampled (outside the timed region) for recall@k against brute force.
    pub recall_queries: u32,
    pub index: FaissIndex,
}

// ---------- database ----------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseBackend {
    Postgresql,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbOp {
    Select,
    Insert,
    Update,
    Delete,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseWorkload {
    pub backend: DatabaseBackend,
    pub database: String,
    pub user: String,
    pub password: Option<Secret>,
    pub mix: Mix<DbOp>,
    pub batch_size: u32,
    pub table_name: String,
    /// Rows inserted before the timed phase.
    pub seed_rows: u64,
    /// Keep the table after the run (default: drop it).
    pub keep_table: bool,
}

// ---------- S3 ----------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum S3Op {
    Put,
    Get,
    List,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum S3Addressing {
    Path,
    VirtualHost,
}

#[derive(Debug, Clone, Serialize)]
pub struct S3Workload {
    #[serde(serialize_with = "crate::redact::ser_url")]
    pub endpoint_url: String,
    pub access_key: Secret,
    pub secret_key: Secret,
    pub bucket_name: String,
    pub region: String,
    pub mix: Mix<S3Op>,
    pub object_sizes: SizeMix,
    pub addressing: S3Addressing,
    /// Delete the objects this run created when it ends.
    pub cleanup: bool,
}

// ---------- file storage ----------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileOp {
    Write,
    Read,
    Stat,
    Delete,
}

/// Durability of writes. `sync_mode: true` in older recipes means `fsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncMode {
    /// Page cache only.
    None,
    /// `fsync(2)` after each file write.
    Fsync,
    /// `fdatasync(2)` after each file write.
    Fdatasync,
    /// Open with `O_DSYNC`: every write(2) is synchronous.
    Dsync,
}

/// How block I/O (`io_size`) is issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IoEngine {
    /// io_uring where the kernel allows it, else threads.
    Auto,
    /// io_uring (Linux 5.6+); setup fails where it is refused.
    IoUring,
    /// One blocking call per operation on a thread pool.
    Threads,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileStorageWorkload {
    pub base_path: PathBuf,
    pub mix: Mix<FileOp>,
    pub file_sizes: SizeMix,
    pub use_direct_io: bool,
    pub sync_mode: SyncMode,
    /// Files per size class created before the timed phase so reads hit existing files.
    pub working_set_files: u32,
    /// When set, reads and writes move `io_size_bytes` at a random aligned offset inside a
    /// working-set file (fio-style random I/O) instead of whole files.
    pub io_size_bytes: Option<u64>,
    /// How `io_size` reads and writes are issued (whole-file operations always use threads).
    pub io_engine: IoEngine,
}

// ---------- generic HTTP ----------

#[derive(Debug, Clone, Serialize)]
pub struct HttpWorkload {
    pub method: String,
    /// Absolute URL, or a path joined to the service's base URL.
    #[serde(serialize_with = "crate::redact::ser_url")]
    pub url: String,
    #[serde(serialize_with = "crate::redact::ser_headers")]
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// Expected status; any other status is an error. Default: any 2xx.
    pub expect_status: Option<u16>,
}

/// A secret value: where it comes from, never the value itself in output.
#[derive(Clone, PartialEq)]
pub enum Secret {
    /// Written in the recipe (warned about). Rendered scripts get it via a 0600 file.
    Plain(String),
    /// Read from this environment variable at run time.
    Env(String),
    /// Read from this file at run time (first line, trailing newline stripped).
    File(PathBuf),
    /// Generated at compile time (random), stored in a 0600 file.
    Generated,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Plain(_) => f.write_str("Secret::Plain(<redacted>)"),
            Secret::Env(v) => write!(f, "Secret::Env({v})"),
            Secret::File(p) => write!(f, "Secret::File({})", p.display()),
            Secret::Generated => f.write_str("Secret::Generated"),
        }
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Secret::Plain(_) => s.serialize_str("<redacted>"),
            Secret::Env(v) => s.serialize_str(&format!("${{{v}}}")),
            Secret::File(p) => s.serialize_str(&format!("file:{}", p.display())),
            Secret::Generated => s.serialize_str("<generated>"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret is generated at compile time; read it from the campaign's secrets file")]
    Generated,
}

impl Secret {
    /// Resolve the value now (on the node, at run time).
    pub fn resolve(&self) -> Result<String, SecretError> {
        match self {
            Secret::Plain(v) => Ok(v.clone()),
            Secret::Env(var) => {
                std::env::var(var).map_err(|_| SecretError::MissingEnv(var.clone()))
            }
            Secret::File(path) => std::fs::read_to_string(path)
                .map(|s| s.lines().next().unwrap_or_default().to_string())
                .map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                }),
            Secret::Generated => Err(SecretError::Generated),
        }
    }
}
