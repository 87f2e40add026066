//! The contract between the load engine and the per-service clients.
//!
//! The engine owns timing: it records `scheduled`, `sent` and `done` for every request. A
//! client only performs the operation, marks the first byte / first token with
//! [`RequestCtx::mark_first_byte`], and describes what happened in an [`Outcome`].

use super::clock::Clock;
use super::rng::Rng;
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a request failed. Stored as its `as_str()` in SQLite (`requests.error_class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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

/// Per-request context handed to a worker.
pub struct RequestCtx<'a> {
    pub worker: u32,
    /// Sequence number of this request within the run (0-based, across workers).
    pub seq: u64,
    pub rng: &'a mut Rng,
    pub clock: &'a Clock,
    pub first_byte_ns: Option<i64>,
}

impl RequestCtx<'_> {
    /// Mark the first byte (first token, first result) now; later calls are ignored.
    pub fn mark_first_byte(&mut self) {
        if self.first_byte_ns.is_none() {
            self.first_byte_ns = Some(self.clock.now_ns());
        }
    }
}

/// A setup/teardown failure (outside the timed region): stops the run with a clear message.
#[derive(Debug, thiserror::Error)]
#[error("{stage}: {message}")]
pub struct ClientError {
    pub class: ErrorClass,
    pub stage: &'static str,
    pub message: String,
}

impl ClientError {
    pub fn new(class: ErrorClass, stage: &'static str, message: impl Into<String>) -> Self {
        ClientError {
            class,
            stage,
            message: message.into(),
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

/// One service kind's client. `connect` may be called many times: each call is one
/// connection/session, used by one worker at a time.
pub trait Client: Send + Sync + 'static {
    /// Outside the timed region: check the service answers, create tables / buckets /
    /// collections, seed data, prepare payloads.
    fn setup(&self) -> BoxFuture<'_, Result<(), ClientError>>;
    fn connect(&self, worker: u32) -> BoxFuture<'_, Result<Box<dyn Worker>, ClientError>>;
    /// After the timed region: clean up and report figures such as recall.
    fn teardown(&self) -> BoxFuture<'_, Result<Vec<RunMetric>, ClientError>>;
}

pub trait Worker: Send {
    fn request<'a>(&'a mut self, ctx: &'a mut RequestCtx<'_>) -> BoxFuture<'a, Outcome>;
}
