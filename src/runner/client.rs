//! The contract between the load engine and the per-service clients.
//!
//! The engine owns timing: it records `scheduled`, `sent` and `done` for every request. A
//! client only performs the operation, marks the first byte / first token with
//! [`RequestCtx::mark_first_byte`], and describes what happened in an [`Outcome`].

pub use crate::model::{ErrorClass, LlmOutcome, Outcome, RunMetric};

use super::clock::Clock;
use super::rng::Rng;
use std::future::Future;
use std::pin::Pin;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

/// One service kind's client. `connect` may be called many times: each call is one
/// connection/session, used by one worker at a time.
pub trait Client: Send + Sync + 'static {
    /// Outside the timed region: check the service answers, create tables / buckets /
    /// collections, seed data, prepare payloads.
    fn setup(&self) -> BoxFuture<'_, Result<(), ClientError>>;
    fn connect(&self, worker: u32) -> BoxFuture<'_, Result<Box<dyn Worker>, ClientError>>;
    /// After the timed region: clean up and report figures such as recall.
    fn teardown(&self) -> BoxFuture<'_, Result<Vec<RunMetric>, ClientError>>;
    /// Outside the timed region: what the service says it is (`service.version`,
    /// `service.server`, ...; see [`crate::runner::provenance`]). Best effort: a service that
    /// does not tell yields nothing, never an error.
    fn service_facts(&self) -> BoxFuture<'_, crate::runner::provenance::Facts> {
        Box::pin(async { crate::runner::provenance::Facts::new() })
    }
}

pub trait Worker: Send {
    fn request<'a>(&'a mut self, ctx: &'a mut RequestCtx<'_>) -> BoxFuture<'a, Outcome>;
}
