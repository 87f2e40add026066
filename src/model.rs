//! Leaf module: the record types shared by the runner (which produces them), the store (which
//! writes and reads them) and the reports. It imports nothing from the crate.

use serde::Serialize;

/// The one generator-saturation threshold: the runner flags a run `generator_saturated` and the
/// report's validity gate marks it INVALID when the p99 of its **generator lag** (how late
/// requests left after their scheduled time, not counting waits for a free `max_in_flight`
/// slot, which are the service's doing) exceeds this, in milliseconds.
///
/// Why 5 ms: the schedule runs on a 1 ms timer, so a healthy generator stays within a few
/// ticks; past 5 ms at p99 the offered load is no longer the recipe's arrival process, and the
/// lag lands in every corrected latency of services that answer in microseconds to a few
/// milliseconds (files, HTTP, S3, PostgreSQL). Rate and latency then measure the runner.
pub const GENERATOR_LAG_P99_LIMIT_MS: f64 = 5.0;

/// A name as `&'static str`, for the small, bounded sets the store takes by reference (sample
/// names: node figures plus eight per GPU; a kind's operation names): each distinct name is
/// leaked once per process.
pub fn intern(name: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut set = NAMES
        .get_or_init(|| Mutex::new(HashSet::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(n) = set.get(name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// Whether requests the generator never sent before the run ended mean it fell behind its
/// schedule by more than [`GENERATOR_LAG_P99_LIMIT_MS`]: `not_sent` requests at the target
/// rate are that far behind. The requests due in the last moments of a run that a generator
/// on time reaches a fraction of a millisecond late are cut at the end, and are no more
/// saturation than that fraction of a millisecond (2 of 80,000 req/s were seen on an idle
/// generator). Without a target rate, any request never sent counts.
pub fn backlog_over_limit(not_sent: f64, target_rate_per_s: Option<f64>) -> bool {
    match target_rate_per_s {
        Some(rate) if rate > 0.0 => not_sent > rate * GENERATOR_LAG_P99_LIMIT_MS / 1000.0,
        _ => not_sent > 0.0,
    }
}

/// Why a request failed. Stored as its `as_str()` in SQLite (`requests.error_class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// TCP connect refused / reset before a response.
    Connect,
    /// The request exceeded its timeout.
    Timeout,
    /// The server answered with an unexpected HTTP status (see `http_status`).
    HttpStatus,
    /// Malformed or unexpected response (bad JSON, broken stream, error inside a 200 stream).
    Protocol,
    /// The response was well-formed but wrong (zero tokens, missing object, bad checksum).
    Validation,
    /// Local or remote I/O error (file storage, socket read/write).
    Io,
    /// Authentication or permission refused (401/403, bad credentials, EACCES).
    Auth,
    /// The run was stopped (SIGTERM/Ctrl-C) while this request was in flight.
    Cancelled,
    Other,
}

impl ErrorClass {
    /// Every class, in declaration order (label order of live metrics and pushes).
    pub const ALL: [ErrorClass; 9] = [
        ErrorClass::Connect,
        ErrorClass::Timeout,
        ErrorClass::HttpStatus,
        ErrorClass::Protocol,
        ErrorClass::Validation,
        ErrorClass::Io,
        ErrorClass::Auth,
        ErrorClass::Cancelled,
        ErrorClass::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::HttpStatus => "http_status",
            ErrorClass::Protocol => "protocol",
            ErrorClass::Validation => "validation",
            ErrorClass::Io => "io",
            ErrorClass::Auth => "auth",
            ErrorClass::Cancelled => "cancelled",
            ErrorClass::Other => "other",
        }
    }
}

/// LLM specifics of one request (all optional: filled by LLM clients only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LlmOutcome {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// True when token counts came from the server (usage / eval_count), false if counted.
    pub tokens_from_server: bool,
    /// Epoch-ns timestamps of every token (or chunk) after the first, for ITL.
    pub token_times_ns: Vec<i64>,
}

/// What one request produced. Timestamps other than first byte belong to the engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Operation label: `read`, `write`, `search`, `select`, `put`, `generate`, `GET`, ...
    pub op: &'static str,
    /// `None` = success.
    pub error: Option<ErrorClass>,
    /// A short human message for the first errors of each class (not stored per row).
    pub error_message: Option<String>,
    pub http_status: Option<u16>,
    /// Payload size the operation was asked to move (object/file/batch size), bytes.
    pub size_bytes: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub llm: Option<LlmOutcome>,
}

impl Outcome {
    pub fn ok(op: &'static str) -> Self {
        Outcome {
            op,
            ..Default::default()
        }
    }

    pub fn err(op: &'static str, class: ErrorClass, message: impl Into<String>) -> Self {
        Outcome {
            op,
            error: Some(class),
            error_message: Some(message.into()),
            ..Default::default()
        }
    }
}

/// A figure measured by the client outside the timed region (e.g. `recall_at_k`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunMetric {
    pub name: String,
    pub value: f64,
    pub unit: String,
}

impl RunMetric {
    pub fn new(name: &str, value: f64, unit: &str) -> RunMetric {
        RunMetric {
            name: name.into(),
            value,
            unit: unit.into(),
        }
    }
}

/// `runs.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Pending,
    Running,
    Success,
    Partial,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
        }
    }

    /// The status a run shows to users (`run --json`, reports, `status`): a run recorded
    /// `success` that failed a validity gate shows `invalid`, never `success`.
    pub fn shown(self, valid: bool) -> &'static str {
        match self {
            RunStatus::Success if !valid => "invalid",
            s => s.as_str(),
        }
    }

    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "pending" => RunStatus::Pending,
            "running" => RunStatus::Running,
            "success" => RunStatus::Success,
            "partial" => RunStatus::Partial,
            "failed" => RunStatus::Failed,
            _ => return None,
        })
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for FailureStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `runs.failure_stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureStage {
    Setup,
    Load,
    Benchmark,
    Collect,
}

impl FailureStage {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureStage::Setup => "setup",
            FailureStage::Load => "load",
            FailureStage::Benchmark => "benchmark",
            FailureStage::Collect => "collect",
        }
    }

    pub fn parse(s: &str) -> Option<FailureStage> {
        Some(match s {
            "setup" => FailureStage::Setup,
            "load" => FailureStage::Load,
            "benchmark" => FailureStage::Benchmark,
            "collect" => FailureStage::Collect,
            _ => return None,
        })
    }
}

/// The signal that stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StopSignal {
    Int,
    Term,
    Usr1,
}

impl StopSignal {
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Int => "INT",
            StopSignal::Term => "TERM",
            StopSignal::Usr1 => "USR1",
        }
    }
}

/// `runs.stop_reason`: why load generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The measured duration elapsed.
    Duration,
    /// The `requests` count was reached.
    Requests,
    Signal(StopSignal),
    /// The error rate exceeded `max_error_rate`.
    MaxErrorRate,
    /// The campaign file could not be written (a full disk): measuring on is pointless.
    StoreFailed,
    /// The service this job started exited (or was found dead) during the run: the batch
    /// script says so and the runner stops at once instead of loading a dead port.
    ServiceExited,
}

impl StopReason {
    pub fn as_string(self) -> String {
        match self {
            StopReason::Duration => "duration".into(),
            StopReason::Requests => "requests".into(),
            StopReason::Signal(s) => format!("signal:{}", s.name()),
            StopReason::MaxErrorRate => "max_error_rate".into(),
            StopReason::StoreFailed => "store_failed".into(),
            StopReason::ServiceExited => "service_exited".into(),
        }
    }
}

/// Provenance of a run (`runner::provenance` collects it): ordered `key → value` facts.
pub type Facts = std::collections::BTreeMap<String, String>;

/// Keys that identify the hardware: two runs whose values differ ran on different hardware.
pub const HARDWARE_KEYS: &[&str] = &["cpu.model", "cpu.count", "memory.total_gib", "gpu.count"];

/// A short digest of the hardware keys (empty values count): equal fingerprints, same hardware.
pub fn hardware_fingerprint(f: &Facts) -> Option<String> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut any = false;
    for k in HARDWARE_KEYS {
        let v = f.get(*k).map(String::as_str).unwrap_or("");
        any |= !v.is_empty();
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b"\n");
    }
    let gpu_names: Vec<&String> = f
        .iter()
        .filter(|(k, _)| k.starts_with("gpu") && k.ends_with(".name"))
        .map(|(_, v)| v)
        .collect();
    for n in gpu_names {
        any = true;
        h.update(n.as_bytes());
        h.update(b"\n");
    }
    any.then(|| hex::encode(&h.finalize()[..6]))
}
