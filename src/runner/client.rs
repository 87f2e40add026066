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
    /// When the engine sent this request (epoch ns of `clock`): a worker reads it instead of
    /// the clock, e.g. to tell how long its connection sat idle.
    pub sent_ns: i64,
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
    /// Outside the timed region: a driver that runs an unpaced closed loop of `clients`
    /// clients on one thread of its own, or None (the engine's one task per client). A client
    /// whose requests complete through a queue it can poll itself (block I/O through io_uring)
    /// saves the task, the future and the two wake-ups every request costs on the runtime.
    /// An error fails the run as a failed connect would.
    fn closed_driver(
        &self,
        _clients: u32,
    ) -> BoxFuture<'_, Result<Option<Box<dyn ClosedDriver>>, ClientError>> {
        Box::pin(async { Ok(None) })
    }
}

/// A closed loop run by the client on the calling (blocking) thread; see
/// [`Client::closed_driver`].
pub trait ClosedDriver: Send {
    /// Issue each client's next request as soon as its last one is done, for as long as
    /// [`DriverCtl::next`] hands out requests, and return once every request issued has been
    /// given to [`DriverCtl::done`] (or, past a stop's grace, as cancelled).
    fn run(self: Box<Self>, ctl: &mut dyn DriverCtl);
}

/// What the engine gives a [`ClosedDriver`]: the schedule, the clock and the recorder.
pub trait DriverCtl {
    /// Block until the first request may go.
    fn wait_start(&self);
    fn now_ns(&self) -> i64;
    /// The next request of `client`: its sequence number and its sent time (now), or None
    /// when this client is done (end time, request budget or a stop).
    fn next(&mut self, client: u32) -> Option<(u64, i64)>;
    /// Request `seq` of `client`, sent at `sent_ns`, ended at `done_ns` with `o`.
    fn done(&mut self, client: u32, seq: u64, sent_ns: i64, done_ns: i64, o: &Outcome);
    /// A stop (signal, error budget, the store) was requested: what is in flight gets
    /// [`DriverCtl::grace_ns`] more, then is recorded as cancelled.
    fn stopping(&self) -> bool;
    /// How long one request may take before it is recorded as timed out, ns.
    fn timeout_ns(&self) -> i64;
    /// How long requests in flight may still take after a stop, ns.
    fn grace_ns(&self) -> i64;
    /// The run's seed (requests draw from `Rng::for_stream(seed, seq)`, as the engine's).
    fn seed(&self) -> u64;
}

pub trait Worker: Send {
    fn request<'a>(&'a mut self, ctx: &'a mut RequestCtx<'_>) -> BoxFuture<'a, Outcome>;
}
