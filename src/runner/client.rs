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
    /// Outside the timed region: a driver that runs an unpaced closed loop of the clients
    /// `clients` (the engine's client ids) on one thread of its own, or None (the engine's
    /// one task per client). A client whose requests complete through a queue it can poll
    /// itself (block I/O through io_uring, sockets through epoll) saves the task, the future
    /// and the wake-ups every request costs on the runtime. A kind with client threads
    /// ([`crate::kinds::KindSpec::client_threads`]) is asked once per thread, each time for
    /// that thread's share of the clients. An error fails the run as a failed connect would.
    fn closed_driver<'a>(
        &'a self,
        _clients: &'a [u32],
    ) -> BoxFuture<'a, Result<Option<Box<dyn ClosedDriver>>, ClientError>> {
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
    /// Request `seq` of `client`, sent at `sent_ns`, its first byte at `first_byte_ns` (where
    /// the client times one), ended at `done_ns` with `o`.
    fn done(
        &mut self,
        client: u32,
        seq: u64,
        sent_ns: i64,
        first_byte_ns: Option<i64>,
        done_ns: i64,
        o: &Outcome,
    );
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

/// The engine's side of a [`ClosedDriver`], scripted for the drivers' tests.
#[cfg(test)]
pub(crate) mod scripted {
    use super::{DriverCtl, Outcome};

    /// `budget` requests in all, handed to whichever client asks; a stop from the request
    /// `stop_at` on; every request that ended, in order.
    pub(crate) struct Ctl {
        pub budget: u64,
        pub handed: u64,
        pub stop_at: Option<u64>,
        pub timeout_ns: i64,
        /// (client, request, first byte after the send, outcome)
        pub done: Vec<(u32, u64, Option<i64>, Outcome)>,
        pub t0: std::time::Instant,
        /// How long each request after the first waits before it is handed out.
        pub pace: std::time::Duration,
    }

    pub(crate) fn ctl(budget: u64, stop_at: Option<u64>, timeout_ms: i64) -> Ctl {
        Ctl {
            budget,
            handed: 0,
            stop_at,
            timeout_ns: timeout_ms * 1_000_000,
            done: Vec::new(),
            t0: std::time::Instant::now(),
            pace: std::time::Duration::ZERO,
        }
    }

    impl DriverCtl for Ctl {
        fn wait_start(&self) {}
        fn now_ns(&self) -> i64 {
            self.t0.elapsed().as_nanos() as i64
        }
        fn next(&mut self, _client: u32) -> Option<(u64, i64)> {
            if self.handed >= self.budget || self.stopping() {
                return None;
            }
            if self.handed > 0 {
                std::thread::sleep(self.pace);
            }
            self.handed += 1;
            Some((self.handed - 1, self.now_ns()))
        }
        fn done(
            &mut self,
            client: u32,
            seq: u64,
            sent_ns: i64,
            first_byte_ns: Option<i64>,
            done_ns: i64,
            o: &Outcome,
        ) {
            assert!(done_ns >= sent_ns);
            if let Some(fb) = first_byte_ns {
                assert!(sent_ns <= fb && fb <= done_ns, "{sent_ns} {fb} {done_ns}");
            }
            let fb = first_byte_ns.map(|t| t - sent_ns);
            self.done.push((client, seq, fb, o.clone()));
        }
        fn stopping(&self) -> bool {
            self.stop_at.is_some_and(|n| self.handed >= n)
        }
        fn timeout_ns(&self) -> i64 {
            self.timeout_ns
        }
        fn grace_ns(&self) -> i64 {
            30_000_000
        }
        fn seed(&self) -> u64 {
            1
        }
    }
}
