//! The load engine: drives one service's client with an open-loop schedule or a closed loop,
//! times every request, records it, and stops cleanly.
//!
//! Open loop: a dispatcher task walks the [`Schedule`] (sleeping on a timerfd in the runtime's
//! reactor, to the microsecond, not on the 1 ms tokio timer), takes a permit (at most
//! `max_in_flight` in flight) and spawns the request on the same worker; a request takes an
//! idle connection or opens a new one. When the
//! service is slow the permit wait shows up as schedule lag, and latency counted from the
//! scheduled start ("corrected") includes it: no coordinated omission.
//! Closed loop: `clients` tasks, each sending its next request when the previous returns
//! (`scheduled = sent`), optionally paced to `target_rate_per_client_per_s`. A client that can
//! drive an unpaced closed loop itself ([`Client::closed_driver`]: block I/O through io_uring,
//! plain HTTP through epoll) runs it on threads of its own (one, or one per client thread
//! with a share of the clients), under the same schedule, budget, stop and recording.
//!
//! Every request is recorded (warmup included, flagged) with its four timestamps. Successful
//! measured requests also go into per-client HDR histograms (microseconds) of
//! `latency_corrected_us` (done − scheduled) and `latency_service_us` (done − sent), stored
//! serialized per client (`worker` = client index) and merged (`worker` = -1).

use super::client::{
    Client, ClientError, ClosedDriver, DriverCtl, ErrorClass, Outcome, RequestCtx, RunMetric,
    Worker,
};
use super::clock::Clock;
use super::cpu::{process_cpu_s, thread_cpu_s};
use super::live::{class_index, LiveObserver, LiveSnapshot, Phase, Quantiles};
use super::rng::Rng;
use super::schedule::Schedule;
use crate::compat::DurationHistogram;
use crate::recipe::{Arrival, Load, ServiceKind};
use crate::store::{
    encode_histogram, RequestRow, RequestSink, StopReason, StopSignal, StoreHandle,
};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Semaphore};

/// Generator lag (schedule lag not explained by waiting for a free slot) above which the
/// run is flagged `generator_saturated`: the runner, not the service, set the pace. The same
/// constant is the report's validity gate (one threshold, one verdict).
pub use crate::model::GENERATOR_LAG_P99_LIMIT_MS as GENERATOR_LAG_LIMIT_MS;

/// How long in-flight requests may finish after a stop signal (capped by the timeout).
pub const DRAIN_AFTER_SIGNAL: Duration = Duration::from_secs(10);

/// Open loop: how long requests still in flight at the end of the duration may finish
/// (capped by the timeout); the rest are recorded as `cancelled` (outstanding at the end).
pub const DRAIN_AFTER_DURATION: Duration = Duration::from_secs(10);

/// What the open-loop dispatcher saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct DispatchStats {
    /// Open-loop connections (fixed for the run).
    pub connections: u32,
    /// Requests whose time had come while every connection was busy (they waited).
    pub waited_for_connection: u64,
    /// Requests scheduled before the end of the run that were never sent (the run ended while
    /// they waited for a connection, or the generator fell behind its schedule).
    pub not_sent: u64,
    /// Of `not_sent`: those cut while the dispatcher was waiting for a free connection.
    pub not_sent_connection_limited: u64,
    /// Requests dispatched (open loop).
    pub sent: u64,
}

/// The share of requests that must have waited for a connection before the waits can be what
/// put the schedule lag's p99 over its limit: fewer than 1 % of the requests do not reach into
/// the p99, so a lag p99 over the limit with fewer waits is the generator's own.
pub const CONNECTION_WAIT_SHARE: f64 = 0.01;

/// The process-wide stop request (signals; the first signal wins) and the news that the
/// service died (with what the batch script saw: "the service exited (signal KILL) at T").
#[derive(Debug, Default)]
pub struct StopFlag(AtomicU8, std::sync::OnceLock<String>, AtomicBool);

/// With [`StopFlag::watch_silence`]: this many whole seconds in which requests failed to
/// connect or timed out and not one succeeded mean the service stopped answering.
pub const SILENT_S: u32 = 5;

impl StopFlag {
    /// The service is this job's own (a batch script started it): a service that stops
    /// answering (only connect errors and timeouts, no success, for [`SILENT_S`] seconds) ends
    /// the run like one that exited.
    pub fn watch_silence(&self) {
        self.2.store(true, Ordering::SeqCst);
    }

    /// The service this job started is gone: load stops, the run ends failed with `message`.
    pub fn service_exited(&self, message: String) {
        let _ = self.1.set(message);
    }

    pub fn service_exit(&self) -> Option<&str> {
        self.1.get().map(String::as_str)
    }

    pub fn new() -> Arc<StopFlag> {
        Arc::new(StopFlag::default())
    }

    pub fn set(&self, s: StopSignal) {
        let v = match s {
            StopSignal::Int => 1,
            StopSignal::Term => 2,
            StopSignal::Usr1 => 3,
        };
        let _ = self
            .0
            .compare_exchange(0, v, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub fn get(&self) -> Option<StopSignal> {
        match self.0.load(Ordering::SeqCst) {
            1 => Some(StopSignal::Int),
            2 => Some(StopSignal::Term),
            3 => Some(StopSignal::Usr1),
            _ => None,
        }
    }
}

pub struct EngineConfig {
    pub run_id: Arc<str>,
    pub service: String,
    pub kind: ServiceKind,
    pub load: Load,
    pub clock: Clock,
    pub store: StoreHandle,
    pub stop: Arc<StopFlag>,
    pub observers: Vec<Arc<dyn LiveObserver>>,
}

/// What a finished load phase reports back.
#[derive(Debug, Clone)]
pub struct EngineOutcome {
    pub stop_reason: StopReason,
    pub started_ns: i64,
    pub measure_start_ns: i64,
    pub ended_ns: i64,
    /// Requests recorded (warmup included).
    pub requests: u64,
    pub errors: u64,
    /// Measured-phase p99 of generator lag, ms (open loop only).
    pub generator_lag_p99_ms: f64,
    pub generator_saturated: bool,
    /// Self-monitoring figures stored as run metrics.
    pub metrics: Vec<RunMetric>,
}

/// The aggregates of one shard of the clients (see [`Shared::agg`]), on cache lines of their
/// own (the client threads write theirs on every request).
#[repr(align(128))]
struct Agg {
    /// The run's id in an allocation of this shard's own: every request row holds a
    /// reference, and a count shared by the client threads would bounce between their cores.
    run_id: Arc<str>,
    /// Per client of the shard, by [`Shared::shard_of`]'s index.
    corrected: Vec<Histogram<u64>>,
    service: Vec<Histogram<u64>>,
    gen_lag: Histogram<u64>,
    sched_lag: Histogram<u64>,
    iv_done: u64,
    iv_errors: u64,
    iv_latency: Histogram<u64>,
    iv_lag: Histogram<u64>,
    /// LLM time to first token and time per output token of the last interval (live view).
    iv_ttft: Histogram<u64>,
    iv_tpot: Histogram<u64>,
    /// Sent → done of every successful request so far, warmup included (the live view's
    /// compatibility histogram, `crate::compat`).
    success_duration: DurationHistogram,
}

impl Agg {
    fn new(run_id: &str, clients: usize) -> Agg {
        Agg {
            run_id: Arc::from(run_id),
            corrected: (0..clients).map(|_| hist()).collect(),
            service: (0..clients).map(|_| hist()).collect(),
            gen_lag: hist(),
            sched_lag: hist(),
            iv_done: 0,
            iv_errors: 0,
            iv_latency: hist(),
            iv_lag: hist(),
            iv_ttft: hist(),
            iv_tpot: hist(),
            success_duration: DurationHistogram::seed(),
        }
    }
}

fn hist() -> Histogram<u64> {
    Histogram::new(3).expect("3 significant figures is valid")
}

struct Shared {
    run_id: Arc<str>,
    clock: Clock,
    store: StoreHandle,
    /// Request rows, one shard per client (the writer takes them in blocks).
    rows: Arc<RequestSink>,
    client: Arc<dyn Client>,
    timeout: Duration,
    seed: u64,
    measure_start_ns: i64,
    /// The aggregates, in shards: client `i` records into shard `i % shards` (at index
    /// `i / shards`), so that each client thread (which drives clients `t`, `t + threads`, ...)
    /// locks a shard of its own and no lock or cache line is shared between them per request.
    /// One shard on the shared runtime. The ticker and the end merge them.
    agg: Box<[Mutex<Agg>]>,
    idle: Mutex<Vec<Box<dyn Worker>>>,
    next_conn: AtomicU32,
    /// The counters, in the shards of [`Shared::agg`]: a client thread updates only its own
    /// (no cache line bounces between the threads per request); readers sum them.
    counters: Box<[Counters]>,
    cancel: watch::Sender<bool>,
    logged: Mutex<[bool; 9]>,
    service: String,
    /// Local stop (max_error_rate).
    error_stop: AtomicBool,
    global_stop: Arc<StopFlag>,
}

/// The request counters of one shard of the clients, on cache lines of their own.
#[derive(Default)]
#[repr(align(128))]
struct Counters {
    in_flight: AtomicU64,
    completed: AtomicU64,
    errors: AtomicU64,
    by_class: [AtomicU64; 9],
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
}

impl Shared {
    /// Counter `f` summed over the shards.
    fn total(&self, f: impl Fn(&Counters) -> &AtomicU64) -> u64 {
        self.counters
            .iter()
            .map(|c| f(c).load(Ordering::SeqCst))
            .sum()
    }

    /// The counters of the shard client `client` records into.
    #[inline]
    fn counters_of(&self, client: u32) -> &Counters {
        &self.counters[client as usize % self.counters.len()]
    }

    fn stop_reason(&self) -> Option<StopReason> {
        if let Some(s) = self.global_stop.get() {
            return Some(StopReason::Signal(s));
        }
        if self.global_stop.service_exit().is_some() {
            return Some(StopReason::ServiceExited);
        }
        if self.store.write_error().is_some() {
            return Some(StopReason::StoreFailed);
        }
        self.error_stop
            .load(Ordering::SeqCst)
            .then_some(StopReason::MaxErrorRate)
    }

    /// The shard client `client` records into, and its index there.
    #[inline]
    fn shard_of(&self, client: u32) -> (&Mutex<Agg>, usize) {
        let n = self.agg.len();
        let c = client as usize;
        (&self.agg[c % n], c / n)
    }

    /// Whether a request sent at `sent_ns` has lasted its timeout by now.
    fn lasted_timeout(&self, sent_ns: i64) -> bool {
        self.clock.now_ns() - sent_ns >= self.timeout.as_nanos() as i64
    }

    fn timed_out(&self) -> Outcome {
        Outcome::err(
            "unknown",
            ErrorClass::Timeout,
            format!("no answer within {:?}", self.timeout),
        )
    }

    /// A request the run's stop cut off: `cancelled`, unless it had already lasted its timeout
    /// (the timer wheel rounds a deadline up to its next millisecond, so a stop can come first):
    /// then it is the timeout it met.
    fn stopped_in_flight(&self, sent_ns: i64) -> Outcome {
        if self.lasted_timeout(sent_ns) {
            return self.timed_out();
        }
        Outcome::err(
            "unknown",
            ErrorClass::Cancelled,
            "run stopped while in flight",
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        client: u32,
        seq: u64,
        scheduled_ns: i64,
        sent_ns: i64,
        first_byte_ns: Option<i64>,
        done_ns: i64,
        gen_ref_ns: i64,
        o: &Outcome,
    ) {
        let warmup = scheduled_ns < self.measure_start_ns;
        let lag_us = ((sent_ns - scheduled_ns).max(0) / 1000) as u64;
        let corrected_us = ((done_ns - scheduled_ns).max(0) / 1000) as u64;
        let service_us = ((done_ns - sent_ns).max(0) / 1000) as u64;
        let run_id = {
            let (shard, k) = self.shard_of(client);
            let mut a = shard.lock().expect("agg lock");
            a.iv_done += 1;
            let _ = a.iv_lag.record(lag_us);
            if o.error.is_some() {
                a.iv_errors += 1;
            } else {
                let _ = a.iv_latency.record(corrected_us);
                a.success_duration.observe(service_us as f64 / 1e6);
                if let (Some(fb), Some(l)) = (first_byte_ns, &o.llm) {
                    let _ = a.iv_ttft.record(((fb - sent_ns).max(0) / 1000) as u64);
                    if let Some(n) = l.output_tokens.filter(|n| *n > 1) {
                        let _ = a
                            .iv_tpot
                            .record(((done_ns - fb).max(0) / 1000) as u64 / (n - 1));
                    }
                }
            }
            if !warmup {
                let gen_us = ((sent_ns - gen_ref_ns.max(scheduled_ns)).max(0) / 1000) as u64;
                let _ = a.gen_lag.record(gen_us);
                let _ = a.sched_lag.record(lag_us);
                if o.error.is_none() {
                    let _ = a.corrected[k].record(corrected_us);
                    let _ = a.service[k].record(service_us);
                }
            }
            a.run_id.clone()
        };
        let c = self.counters_of(client);
        c.completed.fetch_add(1, Ordering::Relaxed);
        if let Some(class) = o.error {
            c.errors.fetch_add(1, Ordering::Relaxed);
            let i = class_index(class);
            c.by_class[i].fetch_add(1, Ordering::Relaxed);
            let mut logged = self.logged.lock().expect("log lock");
            if !logged[i] {
                logged[i] = true;
                tracing::warn!(
                    "[{}] first {} error: {}",
                    self.service,
                    class.as_str(),
                    o.error_message.as_deref().unwrap_or("(no message)")
                );
            }
        }
        c.bytes_sent.fetch_add(o.bytes_sent, Ordering::Relaxed);
        c.bytes_received
            .fetch_add(o.bytes_received, Ordering::Relaxed);
        if let Some(l) = &o.llm {
            c.input_tokens
                .fetch_add(l.input_tokens.unwrap_or(0), Ordering::Relaxed);
            c.output_tokens
                .fetch_add(l.output_tokens.unwrap_or(0), Ordering::Relaxed);
        }
        self.rows.push(
            client as usize,
            RequestRow::from_outcome(
                run_id,
                client,
                seq,
                scheduled_ns,
                sent_ns,
                first_byte_ns,
                done_ns,
                warmup,
                o,
            ),
        );
    }

    /// Run one request on `worker` (or a new connection). Returns the worker when it is
    /// still usable (not after a timeout, a cancel or a failed connect). `sent_ns`: now (the
    /// caller's clock reading, taken just before). `guards`: the client's stop signal and
    /// timer (a closed loop keeps them across its requests), or None for fresh ones.
    #[allow(clippy::too_many_arguments)]
    async fn one_request(
        self: &Arc<Self>,
        worker: Option<Box<dyn Worker>>,
        client: u32,
        seq: u64,
        scheduled_ns: i64,
        gen_ref_ns: i64,
        sent_ns: i64,
        guards: Option<&mut Guards>,
    ) -> Option<Box<dyn Worker>> {
        let mut fresh;
        let g = match guards {
            Some(g) => g,
            None => {
                fresh = Guards::new(self);
                &mut fresh
            }
        };
        g.arm(self, sent_ns);
        let mut worker = match worker {
            Some(w) => w,
            None => {
                let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
                let connect_timed_out =
                    || Outcome::err("connect", ErrorClass::Timeout, "connect timed out");
                // Biased, in this order: a connect that completed wins, and a timeout that
                // fell due in the same timer tick as a stop is a timeout (what the request
                // met), not a cancel (tokio's select picks at random among ready branches).
                let connected = tokio::select! {
                    biased;
                    r = self.client.connect(id) => match r {
                        Ok(w) => Ok(w),
                        Err(e) => Err(Outcome::err("connect", e.class, e.message)),
                    },
                    _ = &mut g.timeout => Err(connect_timed_out()),
                    _ = &mut g.cancel => Err(if self.lasted_timeout(sent_ns) {
                        connect_timed_out()
                    } else {
                        Outcome::err("connect", ErrorClass::Cancelled, "run stopped")
                    }),
                };
                match connected {
                    Ok(w) => w,
                    Err(o) => {
                        let done_ns = self.clock.now_ns();
                        self.record(
                            client,
                            seq,
                            scheduled_ns,
                            sent_ns,
                            None,
                            done_ns,
                            gen_ref_ns,
                            &o,
                        );
                        return None;
                    }
                }
            }
        };
        let mut rng = Rng::for_stream(self.seed, seq);
        let mut ctx = RequestCtx {
            worker: client,
            seq,
            rng: &mut rng,
            clock: &self.clock,
            sent_ns,
            first_byte_ns: None,
        };
        let (outcome, keep) = {
            let fut = worker.request(&mut ctx);
            // Biased as the connect above: an answer, then a timeout, then a stop.
            tokio::select! {
                biased;
                o = fut => (o, true),
                _ = &mut g.timeout => (self.timed_out(), false),
                _ = &mut g.cancel => (self.stopped_in_flight(sent_ns), false),
            }
        };
        let first_byte_ns = ctx.first_byte_ns;
        let done_ns = self.clock.now_ns();
        self.record(
            client,
            seq,
            scheduled_ns,
            sent_ns,
            first_byte_ns,
            done_ns,
            gen_ref_ns,
            &outcome,
        );
        keep.then_some(worker)
    }
}

/// Run the load phase of one service. `client.setup()` must have succeeded.
/// Connections for the first `clients` workers are opened before the timed region; a
/// failure there is returned as an error (nothing was measured).
pub async fn run(client: Arc<dyn Client>, cfg: EngineConfig) -> Result<EngineOutcome, ClientError> {
    let load = cfg.load.clone();
    let clients = load.clients.max(1);
    let open_loop = load.arrival != Arrival::Closed;
    // Pre-connect.
    let pre = if open_loop {
        load.open_loop_connections()
    } else {
        clients
    };
    // An unpaced closed loop the client can drive on threads of its own needs no workers.
    let drivers = if open_loop || load.is_paced() {
        None
    } else {
        closed_drivers(client.as_ref(), cfg.kind, &load).await?
    };
    // A closed loop of self-contained workers runs on client threads that open their own.
    let mut threads = if drivers.is_none() && !open_loop && cfg.kind.spec().client_threads() {
        Some(ClientThreads::start(client.clone(), &load).await?)
    } else {
        None
    };
    let workers = match (&drivers, &threads) {
        (None, None) => preconnect(client.as_ref(), &load, pre).await?,
        _ => Vec::new(),
    };

    let clock = cfg.clock;
    // The first request 1 ms from now. A common start instant (client nodes of one job): the
    // warmup runs until then, so the nodes' measured windows begin together however far apart
    // srun launched them. A node that arrives after the instant starts measuring at once (the
    // report states the stagger).
    let started_ns = clock.now_ns() + 1_000_000;
    let measure_start_ns = match load.measure_from_ns {
        Some(at) => at.max(started_ns),
        None => started_ns + (load.warmup_s * 1e9) as i64,
    };
    let end_ns = measure_start_ns + (load.duration_s * 1e9) as i64;
    let shards = match (&drivers, &threads) {
        (Some(d), _) => d.len() as u32,
        (None, Some(t)) => t.handles.len() as u32,
        (None, None) => 1,
    };
    let sh = new_shared(&cfg, client.clone(), clients, pre, measure_start_ns, shards);
    let hiccups = super::hiccup::HiccupProbe::start(clock, measure_start_ns, end_ns);

    let phase = Arc::new(AtomicU8::new(0)); // 0 load, 1 drain, 2 done
    let ticker = tokio::spawn(ticker(
        sh.clone(),
        TickerCfg {
            kind: cfg.kind,
            target_rate_total_per_s: load.target_rate_total_per_s(),
            planned_s: (end_ns - started_ns) as f64 / 1e9,
            max_error_rate: load.max_error_rate,
            started_ns,
            observers: cfg.observers.clone(),
        },
        phase.clone(),
    ));

    let mut dispatch = DispatchStats::default();
    // Driver threads that ran: how many, and the busiest one's share of its time on the CPU.
    let mut driver_threads: Option<(usize, Option<f64>)> = None;
    let dispatch_reason = if open_loop {
        sh.idle.lock().expect("idle lock").extend(workers);
        // One permit per connection: a request takes a permit and an idle connection.
        let sem = Arc::new(Semaphore::new(pre as usize));
        let sh2 = sh.clone();
        let load2 = load.clone();
        let (reason, stats) = tokio::spawn(async move {
            dispatch_open(sh2, sem, &load2, started_ns, measure_start_ns, end_ns).await
        })
        .await
        .unwrap_or((StopReason::Duration, DispatchStats::default()));
        dispatch = stats;
        reason
    } else if let Some(drivers) = drivers {
        let cl = ClosedLoop::new(&load, started_ns, measure_start_ns, end_ns);
        let n = drivers.len();
        let (reason, busiest) = run_drivers(&sh, drivers, clients, cl).await;
        // Only a kind with client threads has the knob the judgement names.
        if cfg.kind.spec().client_threads() {
            driver_threads = Some((n, busiest));
        }
        reason
    } else {
        let cl = ClosedLoop::new(&load, started_ns, measure_start_ns, end_ns);
        match threads.as_mut() {
            Some(threads) => threads.run(&sh, cl).await,
            None => dispatch_closed(&sh, workers, cl).await,
        }
    };

    // Drain: in-flight requests finish (bounded), then whatever remains is cancelled.
    phase.store(1, Ordering::SeqCst);
    drain(&sh, open_loop).await;
    let ended_ns = clock.now_ns();
    let hiccups = hiccups.map(|p| p.finish()).unwrap_or_default();
    // Their clients have ended: each thread closes its connections on its own.
    let thread_metrics = match (threads, driver_threads) {
        (Some(threads), _) => threads.join_and_judge(&cfg.service).await,
        (None, Some((n, busiest))) => judge_client_threads(&cfg.service, n, busiest),
        (None, None) => Vec::new(),
    };
    // A signal that arrives after the schedule ended does not make the run partial.
    let stop_reason = dispatch_reason;
    phase.store(2, Ordering::SeqCst);
    let _ = ticker.await;

    // Histograms: per client and merged.
    let lags = store_histograms(&sh);
    dispatch.connections = if open_loop { pre } else { 0 };
    let (generator_saturated, mut metrics) =
        judge_generator(&cfg.service, &load, &dispatch, open_loop, &lags, &hiccups);
    metrics.extend(thread_metrics);
    metrics.extend(hiccups.metrics());
    Ok(EngineOutcome {
        stop_reason,
        started_ns,
        measure_start_ns,
        ended_ns,
        requests: sh.total(|c| &c.completed),
        errors: sh.total(|c| &c.errors),
        generator_lag_p99_ms: lags.gen_p99_ms,
        generator_saturated,
        metrics,
    })
}

/// A request's stop signal and timeout. A closed-loop client keeps one across its requests:
/// its stop-signal future registers once, and its timer is re-armed with a later deadline,
/// which Tokio does without taking the timer wheel's lock. Before, each request subscribed to
/// the stop signal and created, registered and removed a timer of its own.
struct Guards {
    cancel: CancelSignal,
    timeout: Pin<Box<tokio::time::Sleep>>,
}

/// Ready once the run cancels what is in flight, and at every poll from then on.
struct CancelSignal {
    wait: Pin<Box<dyn Future<Output = ()> + Send>>,
    fired: bool,
}

impl Future for CancelSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if !self.fired && self.wait.as_mut().poll(cx).is_ready() {
            self.fired = true;
        }
        if self.fired {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }
}

impl Guards {
    fn new(sh: &Shared) -> Guards {
        let mut rx = sh.cancel.subscribe();
        Guards {
            cancel: CancelSignal {
                wait: Box::pin(async move {
                    let _ = rx.wait_for(|c| *c).await;
                }),
                fired: false,
            },
            timeout: Box::pin(tokio::time::sleep(sh.timeout)),
        }
    }

    /// The timeout of a request sent at `sent_ns`.
    fn arm(&mut self, sh: &Shared, sent_ns: i64) {
        let deadline = sh.clock.instant(sent_ns) + sh.timeout;
        self.timeout.as_mut().reset(deadline.into());
    }
}

/// What a client thread is told once every thread has opened its clients: the shared state
/// and the schedule.
type Go = (Arc<Shared>, ClosedLoop);

/// The client threads of a closed loop ([`crate::kinds::Kind::client_threads`]):
/// [`Load::client_threads_for`] of them, each a single-threaded runtime that opens its clients
/// (client `i` on thread `i % threads`) and drives them as [`dispatch_closed`]'s tasks would.
struct ClientThreads {
    go: Vec<tokio::sync::oneshot::Sender<Go>>,
    /// Each thread ends when its clients have; it returns its CPU time over its wall time
    /// while it drove them (0–1), or None when it never did.
    handles: Vec<std::thread::JoinHandle<Option<f64>>>,
}

impl ClientThreads {
    /// Start the threads and wait until each has opened its clients (before the timed region,
    /// each connection within the request timeout as [`preconnect`] does). A failure stops
    /// every thread and is returned.
    async fn start(client: Arc<dyn Client>, load: &Load) -> Result<ClientThreads, ClientError> {
        let shares = thread_shares(load, load.client_threads_for(cores()));
        let n = shares.len() as u32;
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(n as usize);
        let mut threads = ClientThreads {
            go: Vec::new(),
            handles: Vec::new(),
        };
        for (t, ids) in shares.into_iter().enumerate() {
            let (go_tx, go_rx) = tokio::sync::oneshot::channel::<Go>();
            let (client, load, ready) = (client.clone(), load.clone(), ready_tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("fb-clients-{t}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            let _ = ready.blocking_send(Err(ClientError::new(
                                ErrorClass::Other,
                                "connect",
                                format!("cannot start a client thread's runtime: {e}"),
                            )));
                            return None;
                        }
                    };
                    rt.block_on(client_thread(client.as_ref(), &load, ids, ready, go_rx))
                });
            match spawned {
                Ok(h) => {
                    threads.go.push(go_tx);
                    threads.handles.push(h);
                }
                Err(e) => {
                    threads.join().await;
                    return Err(ClientError::new(
                        ErrorClass::Other,
                        "connect",
                        format!("cannot start a client thread: {e}"),
                    ));
                }
            }
        }
        drop(ready_tx);
        for _ in 0..n {
            let e = match ready_rx.recv().await {
                Some(Ok(())) => continue,
                Some(Err(e)) => e,
                None => ClientError::new(
                    ErrorClass::Other,
                    "connect",
                    "a client thread ended before it had opened its clients (see the log above)",
                ),
            };
            threads.join().await;
            return Err(e);
        }
        Ok(threads)
    }

    /// Run the schedule on every thread; returns when every client has ended or on a stop
    /// (as [`dispatch_closed`]).
    async fn run(&mut self, sh: &Arc<Shared>, cl: ClosedLoop) -> StopReason {
        for tx in self.go.drain(..) {
            // A thread that has gone has nothing to run.
            let _ = tx.send((sh.clone(), cl.clone()));
        }
        while !self.handles.iter().all(|h| h.is_finished()) && sh.stop_reason().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cl.stop_reason(sh)
    }

    /// Wait for the threads to end (a thread told nothing ends at once); returns the busiest
    /// thread's share of its time on the CPU while it drove its clients (0–1), if any ran.
    async fn join(self) -> Option<f64> {
        drop(self.go);
        let handles = self.handles;
        tokio::task::spawn_blocking(move || {
            handles
                .into_iter()
                .filter_map(|h| h.join().ok().flatten())
                .reduce(f64::max)
        })
        .await
        .ok()
        .flatten()
    }

    /// [`ClientThreads::join`], then [`judge_client_threads`].
    async fn join_and_judge(self, service: &str) -> Vec<RunMetric> {
        let n = self.handles.len();
        let busiest = self.join().await;
        judge_client_threads(service, n, busiest)
    }
}

/// The run metrics `client_threads` and `client_thread_busy_max_percent` of `n` client
/// threads whose busiest was on the CPU `busiest` (0–1) of its time, with a warning when it
/// may have been the limit; nothing when no thread drove clients.
fn judge_client_threads(service: &str, n: usize, busiest: Option<f64>) -> Vec<RunMetric> {
    let Some(busiest) = busiest else {
        return Vec::new();
    };
    if busiest >= CLIENT_THREAD_BUSY_LIMIT {
        tracing::warn!(
            "[{service}] a client thread was on the CPU {:.0} % of the run: the runner may have limited this closed loop's throughput, not the service (raise client_threads above {n})",
            busiest * 100.0
        );
    }
    vec![
        RunMetric::new("client_threads", n as f64, "count"),
        RunMetric::new("client_thread_busy_max_percent", busiest * 100.0, "percent"),
    ]
}

/// A client thread busier than this share of its time was probably the limit of a closed
/// loop's throughput, not the service.
const CLIENT_THREAD_BUSY_LIMIT: f64 = 0.9;

/// One client thread: open its clients, say so, wait for the schedule, drive them. Returns
/// its CPU time over its wall time while it drove them (0–1).
async fn client_thread(
    client: &dyn Client,
    load: &Load,
    ids: Vec<u32>,
    ready: tokio::sync::mpsc::Sender<Result<(), ClientError>>,
    go: tokio::sync::oneshot::Receiver<Go>,
) -> Option<f64> {
    let mut workers = Vec::with_capacity(ids.len());
    for &i in &ids {
        match connect_within_timeout(client, load, i).await {
            Ok(w) => workers.push(w),
            Err(e) => {
                let _ = ready.send(Err(e)).await;
                return None;
            }
        }
    }
    let _ = ready.send(Ok(())).await;
    drop(ready);
    let (sh, cl) = go.await.ok()?;
    let clients = ids
        .into_iter()
        .zip(workers)
        .map(|(i, w)| closed_client(sh.clone(), i, w, cl.clone()));
    let (cpu0, t0) = (thread_cpu_s(), std::time::Instant::now());
    futures_util::future::join_all(clients).await;
    let wall_s = t0.elapsed().as_secs_f64();
    (wall_s > 0.0).then(|| ((thread_cpu_s() - cpu0) / wall_s).clamp(0.0, 1.0))
}

/// Open connection `i` within the request timeout (at least 1 s).
async fn connect_within_timeout(
    client: &dyn Client,
    load: &Load,
    i: u32,
) -> Result<Box<dyn Worker>, ClientError> {
    tokio::time::timeout(
        Duration::from_secs_f64(load.timeout_s.max(1.0)),
        client.connect(i),
    )
    .await
    .map_err(|_| {
        ClientError::new(
            ErrorClass::Timeout,
            "connect",
            format!("connection {i} did not open within {} s", load.timeout_s),
        )
    })?
}

/// Open the first `n` connections before the timed region, each within the request timeout
/// (at least 1 s).
async fn preconnect(
    client: &dyn Client,
    load: &Load,
    n: u32,
) -> Result<Vec<Box<dyn Worker>>, ClientError> {
    let mut workers = Vec::with_capacity(n as usize);
    for i in 0..n {
        workers.push(connect_within_timeout(client, load, i).await?);
    }
    Ok(workers)
}

/// The state the request tasks, the dispatcher and the ticker share.
fn new_shared(
    cfg: &EngineConfig,
    client: Arc<dyn Client>,
    clients: u32,
    pre: u32,
    measure_start_ns: i64,
    shards: u32,
) -> Arc<Shared> {
    let shards = shards.clamp(1, clients.max(1)) as usize;
    let load = &cfg.load;
    let clock = cfg.clock;
    let (cancel, _) = watch::channel(false);
    Arc::new(Shared {
        run_id: cfg.run_id.clone(),
        clock,
        store: cfg.store.clone(),
        rows: cfg.store.request_sink(&cfg.run_id, clients as usize),
        client: client.clone(),
        timeout: Duration::from_secs_f64(load.timeout_s.max(0.001)),
        seed: load.seed,
        measure_start_ns,
        agg: (0..shards)
            .map(|k| {
                Mutex::new(Agg::new(
                    &cfg.run_id,
                    (clients as usize).saturating_sub(k).div_ceil(shards),
                ))
            })
            .collect(),
        idle: Mutex::new(Vec::new()),
        next_conn: AtomicU32::new(pre),
        counters: (0..shards).map(|_| Counters::default()).collect(),
        cancel,
        logged: Mutex::new([false; 9]),
        service: cfg.service.clone(),
        error_stop: AtomicBool::new(false),
        global_stop: cfg.stop.clone(),
    })
}

/// Closed loop: one task per client, each sending its next request when the last is done;
/// ends when every client ended (the end time) or on a stop.
async fn dispatch_closed(
    sh: &Arc<Shared>,
    workers: Vec<Box<dyn Worker>>,
    cl: ClosedLoop,
) -> StopReason {
    let mut tasks = Vec::new();
    for (i, w) in workers.into_iter().enumerate() {
        tasks.push(tokio::spawn(closed_client(
            sh.clone(),
            i as u32,
            w,
            cl.clone(),
        )));
    }
    // Closed-loop clients end on their own at the end time; on a stop they end after
    // their current request, which the drain below bounds.
    let mut set: Vec<_> = tasks;
    loop {
        if set.iter().all(|t| t.is_finished()) {
            break;
        }
        if sh.stop_reason().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if sh.stop_reason().is_none() {
        for t in set.drain(..) {
            let _ = t.await;
        }
    }
    cl.stop_reason(sh)
}

/// A closed loop's schedule and what its clients share: the request budget's count and why
/// the loop ended.
#[derive(Clone)]
struct ClosedLoop(Arc<ClosedLoopInner>);

struct ClosedLoopInner {
    load: Load,
    started_ns: i64,
    measure_start_ns: i64,
    end_ns: i64,
    /// Measured requests issued (against `load.requests`).
    issued: AtomicU64,
    /// Why a client ended on its own (the end time, the request budget).
    reason: Mutex<Option<StopReason>>,
}

impl ClosedLoop {
    fn new(load: &Load, started_ns: i64, measure_start_ns: i64, end_ns: i64) -> ClosedLoop {
        ClosedLoop(Arc::new(ClosedLoopInner {
            load: load.clone(),
            started_ns,
            measure_start_ns,
            end_ns,
            issued: AtomicU64::new(0),
            reason: Mutex::new(None),
        }))
    }

    /// Why the loop ended: a stop, else what its clients ended on, else the duration.
    fn stop_reason(&self, sh: &Shared) -> StopReason {
        let local = *self.0.reason.lock().expect("reason lock");
        sh.stop_reason().or(local).unwrap_or(StopReason::Duration)
    }

    fn end(&self, why: StopReason) {
        *self.0.reason.lock().expect("reason lock") = Some(why);
    }
}

/// Drain: in-flight requests finish (bounded: after a stop signal, after the duration of
/// an open loop, or the timeout), then whatever remains is cancelled.
async fn drain(sh: &Shared, open_loop: bool) {
    let drain_start = std::time::Instant::now();
    let mut signal_seen_at: Option<std::time::Instant> = None;
    loop {
        if sh.total(|c| &c.in_flight) == 0 {
            break;
        }
        let reason = sh.stop_reason();
        if reason.is_some() && signal_seen_at.is_none() {
            signal_seen_at = Some(std::time::Instant::now());
        }
        let limit_hit = match signal_seen_at {
            Some(t) => t.elapsed() >= sh.timeout.min(DRAIN_AFTER_SIGNAL),
            // Open loop ends at its duration: what is still in flight gets a bounded grace.
            None if open_loop => drain_start.elapsed() >= sh.timeout.min(DRAIN_AFTER_DURATION),
            None => drain_start.elapsed() >= sh.timeout + Duration::from_secs(1),
        };
        if limit_hit {
            sh.cancel.send_replace(true);
            let t = std::time::Instant::now();
            while sh.total(|c| &c.in_flight) > 0 && t.elapsed() < Duration::from_secs(2) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The lags of a run's measured requests, ms.
#[derive(Clone, Copy)]
struct Lags {
    /// The generator's own lag at p99.
    gen_p99_ms: f64,
    /// The schedule lag (waits for a connection included) at p99.
    sched_p99_ms: f64,
    /// The generator's own lag at p50, p90 and p99.9.
    gen_ms: [(u32, f64); 3],
}

/// Store the latency histograms (per client and merged) and the schedule lag; returns the
/// lags.
fn store_histograms(sh: &Shared) -> Lags {
    let shards: Vec<_> = sh.agg.iter().map(|m| m.lock().expect("agg lock")).collect();
    let mut merged_c = hist();
    let mut merged_s = hist();
    let mut sched_lag = hist();
    let mut gen_lag = hist();
    for a in &shards {
        let _ = sched_lag.add(&a.sched_lag);
        let _ = gen_lag.add(&a.gen_lag);
    }
    let clients = shards.iter().map(|a| a.corrected.len()).sum::<usize>();
    for i in 0..clients {
        let a = &shards[i % shards.len()];
        let (c, s) = (&a.corrected[i / shards.len()], &a.service[i / shards.len()]);
        sh.store.histogram(
            &sh.run_id,
            i as i32,
            "latency_corrected_us",
            None,
            encode_histogram(c),
        );
        sh.store.histogram(
            &sh.run_id,
            i as i32,
            "latency_service_us",
            None,
            encode_histogram(s),
        );
        let _ = merged_c.add(c);
        let _ = merged_s.add(s);
    }
    sh.store.histogram(
        &sh.run_id,
        -1,
        "latency_corrected_us",
        None,
        encode_histogram(&merged_c),
    );
    sh.store.histogram(
        &sh.run_id,
        -1,
        "latency_service_us",
        None,
        encode_histogram(&merged_s),
    );
    sh.store.histogram(
        &sh.run_id,
        -1,
        "schedule_lag_us",
        None,
        encode_histogram(&sched_lag),
    );
    let gen_q = |q: f64| gen_lag.value_at_quantile(q) as f64 / 1000.0;
    Lags {
        gen_p99_ms: gen_q(0.99),
        sched_p99_ms: sched_lag.value_at_quantile(0.99) as f64 / 1000.0,
        gen_ms: [(50, gen_q(0.5)), (90, gen_q(0.9)), (999, gen_q(0.999))],
    }
}

/// Whether the load generator (not the service) limited the run: its own lag or unsent
/// requests (saturated), or every connection busy (connection-limited); warns with the
/// numbers and returns the flag with the self-monitoring run metrics.
fn judge_generator(
    service: &str,
    load: &Load,
    dispatch: &DispatchStats,
    open_loop: bool,
    lags: &Lags,
    hiccups: &super::hiccup::Hiccups,
) -> (bool, Vec<RunMetric>) {
    let Lags {
        gen_p99_ms,
        sched_p99_ms,
        gen_ms: gen_lag_ms,
    } = *lags;
    let not_sent_by_generator = dispatch.not_sent - dispatch.not_sent_connection_limited;
    let backlog = crate::model::backlog_over_limit(
        not_sent_by_generator as f64,
        load.target_rate_total_per_s(),
    );
    let generator_saturated = open_loop && (gen_p99_ms > GENERATOR_LAG_LIMIT_MS || backlog);
    // Connection-limited: requests left late (or never) because every connection was busy,
    // while the generator itself kept up.
    let waits_reach_the_p99 = dispatch.waited_for_connection as f64
        >= CONNECTION_WAIT_SHARE * dispatch.sent.max(1) as f64;
    let connection_limited = open_loop
        && dispatch.waited_for_connection > 0
        && ((sched_p99_ms > GENERATOR_LAG_LIMIT_MS && waits_reach_the_p99)
            || dispatch.not_sent_connection_limited > 0);
    let stalled = hiccups.describe();
    if connection_limited {
        // A stalled client reads its responses late, and its connections look busy meanwhile.
        let cause = match &stalled {
            Some(s) => format!(
                "the service did not keep the rate with this many connections, or the client did: {s}, and a stalled client frees its connections late"
            ),
            None => "the service did not keep the rate with this many connections (raise connections_per_client to measure it with more)".to_string(),
        };
        tracing::warn!(
            "[{}] connection-limited: all {} connections ({} per client, max_in_flight {}) were busy; {} requests waited for one (schedule lag p99 {:.1} ms, counted in the corrected latency) and {} were never sent before the run ended: {cause}",
            service,
            dispatch.connections,
            load.connections_per_client,
            load.max_in_flight,
            dispatch.waited_for_connection,
            sched_p99_ms,
            dispatch.not_sent_connection_limited,
        );
    } else if let Some(s) = &stalled {
        tracing::warn!(
            "[{service}] {s}: the latencies around those moments include the client's stall, not only the service's time"
        );
    }
    if backlog {
        tracing::warn!(
            "[{}] the load generator fell behind its schedule: {} requests scheduled before the end were never sent",
            service,
            not_sent_by_generator
        );
    }
    if generator_saturated {
        // State the numbers that actually tripped the flag: the lag, the unsent requests, or
        // both (a lag under the limit with unsent requests is not "lag > limit").
        let why = match (gen_p99_ms > GENERATOR_LAG_LIMIT_MS, backlog) {
            (true, true) => format!(
                "generator lag p99 {gen_p99_ms:.1} ms > {GENERATOR_LAG_LIMIT_MS} ms, and {not_sent_by_generator} scheduled requests were never sent"
            ),
            (true, false) => {
                format!("generator lag p99 {gen_p99_ms:.1} ms > {GENERATOR_LAG_LIMIT_MS} ms")
            }
            _ => format!(
                "{not_sent_by_generator} scheduled requests were never sent, more than {GENERATOR_LAG_LIMIT_MS} ms of the schedule (generator lag p99 {gen_p99_ms:.1} ms, within {GENERATOR_LAG_LIMIT_MS} ms)"
            ),
        };
        tracing::warn!(
            "[{}] the load generator could not keep its schedule ({why}): the runner, not the service, was the bottleneck; the run is INVALID (generator_saturated)",
            service,
        );
    }
    let m = RunMetric::new;
    let mut metrics = vec![
        m(
            "generator_saturated",
            if generator_saturated { 1.0 } else { 0.0 },
            "bool",
        ),
        m("schedule_lag_p99_ms", sched_p99_ms, "ms"),
    ];
    if open_loop {
        metrics.push(m("generator_lag_p99_ms", gen_p99_ms, "ms"));
        // The generator's own timing jitter at the other percentiles: `compare` does not
        // attribute to the service a latency change within it (see report::compare).
        for (p, v) in gen_lag_ms {
            metrics.push(m(&format!("generator_lag_p{p}_ms"), v, "ms"));
        }
        metrics.push(m(
            "connection_limited",
            if connection_limited { 1.0 } else { 0.0 },
            "bool",
        ));
        metrics.push(m("connections", dispatch.connections as f64, "count"));
        metrics.push(m(
            "requests_waited_for_connection",
            dispatch.waited_for_connection as f64,
            "count",
        ));
        metrics.push(m("requests_not_sent", dispatch.not_sent as f64, "count"));
        metrics.push(m(
            "requests_not_sent_connection_limited",
            dispatch.not_sent_connection_limited as f64,
            "count",
        ));
    }
    (generator_saturated, metrics)
}

/// Requests of `sched` scheduled in `[from_ns, end_ns)` (offsets from `started_ns`), the
/// first (`first_ns`, already drawn) included; measured ones count against `requests`.
fn count_rest(
    sched: &mut Schedule,
    started_ns: i64,
    first_ns: i64,
    end_ns: i64,
    measure_start_ns: i64,
    load: &Load,
    mut measured: u64,
) -> u64 {
    let mut n = 0;
    let mut t = first_ns;
    while t < end_ns {
        if t >= measure_start_ns {
            if load.requests.is_some_and(|r| measured >= r) {
                break;
            }
            measured += 1;
        }
        n += 1;
        t = started_ns + sched.next_offset_ns();
    }
    n
}

/// Open loop: the dispatcher hands out each request at its scheduled instant (a timerfd on
/// the runtime's reactor, [`super::timer::PreciseTimer`]) as a task of its own, which takes a
/// free connection; a request that finds every connection busy waits for one (the wait is in
/// its corrected latency), never past the end of the run.
async fn dispatch_open(
    sh: Arc<Shared>,
    sem: Arc<Semaphore>,
    load: &Load,
    started_ns: i64,
    measure_start_ns: i64,
    end_ns: i64,
) -> (StopReason, DispatchStats) {
    let clients = load.clients.max(1) as u64;
    let mut sched = Schedule::new(
        load.arrival,
        load.target_rate_total_per_s().unwrap_or(0.0),
        load.seed,
    );
    let mut stats = DispatchStats::default();
    let mut seq: u64 = 0;
    let mut measured: u64 = 0;
    let mut last_wait_end = i64::MIN;
    let mut overdue: u64 = 0;
    let mut timer = match super::timer::PreciseTimer::new() {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::debug!("no timerfd ({e}): arrivals wait on the runtime's 1 ms timers");
            None
        }
    };
    loop {
        let t = started_ns + sched.next_offset_ns();
        if t >= end_ns {
            return (StopReason::Duration, stats);
        }
        // The run ends at its duration even when the generator is behind its schedule.
        // What was still due when the run ended is counted as not sent, never dropped.
        let cut_at_end = |sched: &mut Schedule, stats: &mut DispatchStats, waiting: bool| {
            let n = count_rest(
                sched,
                started_ns,
                t,
                end_ns,
                measure_start_ns,
                load,
                measured,
            );
            stats.not_sent += n;
            if waiting {
                stats.not_sent_connection_limited += n;
            }
            (StopReason::Duration, *stats)
        };
        if sh.clock.now_ns() >= end_ns {
            return cut_at_end(&mut sched, &mut stats, false);
        }
        if t >= measure_start_ns && load.requests.is_some_and(|n| measured >= n) {
            return (StopReason::Requests, stats);
        }
        // Behind the schedule nothing awaits: let the request tasks of this worker run.
        if t <= sh.clock.now_ns() {
            overdue += 1;
            if overdue % 32 == 0 {
                tokio::task::yield_now().await;
            }
        }
        if !wait_until_async(&sh, &mut timer, t).await {
            if sh.clock.now_ns() >= end_ns {
                // Stopped by the end of the run itself.
                return cut_at_end(&mut sched, &mut stats, false);
            }
            return (sh.stop_reason().unwrap_or(StopReason::Duration), stats);
        }
        let permit = match sem.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // Every connection is busy: this request waits for one (the wait is in its
                // corrected latency), but not past the end of the run.
                stats.waited_for_connection += 1;
                let sh2 = sh.clone();
                let sem = sem.clone();
                let end_at = sh.clock.instant(end_ns);
                let got = tokio::select! {
                    p = sem.clone().acquire_owned() => Ok(p.ok()),
                    _ = tokio::time::sleep_until(end_at.into()) => Err(()),
                    _ = async {
                        while sh2.stop_reason().is_none() {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    } => Ok(None),
                };
                match got {
                    Ok(Some(p)) => {
                        last_wait_end = sh.clock.now_ns();
                        p
                    }
                    // A stop that is not the end of the run (a signal, max_error_rate).
                    Ok(None) if sh.clock.now_ns() < end_ns => {
                        return (sh.stop_reason().unwrap_or(StopReason::Duration), stats)
                    }
                    // The end of the run while waiting (whichever of the timers saw it first).
                    Ok(None) | Err(()) => return cut_at_end(&mut sched, &mut stats, true),
                }
            }
        };
        if t >= measure_start_ns {
            measured += 1;
        }
        // Lag caused by waiting for a free connection (the service is slow) is not the
        // generator's: its lag is counted from the later of schedule and last wait.
        let gen_ref_ns = t.max(last_wait_end);
        let client = (seq % clients) as u32;
        sh.counters_of(client)
            .in_flight
            .fetch_add(1, Ordering::SeqCst);
        let sh2 = sh.clone();
        let this_seq = seq;
        tokio::spawn(async move {
            let w = sh2.idle.lock().expect("idle lock").pop();
            let sent_ns = sh2.clock.now_ns();
            let back = sh2
                .one_request(w, client, this_seq, t, gen_ref_ns, sent_ns, None)
                .await;
            if let Some(w) = back {
                sh2.idle.lock().expect("idle lock").push(w);
            }
            sh2.counters_of(client)
                .in_flight
                .fetch_sub(1, Ordering::SeqCst);
            drop(permit);
        });
        seq += 1;
        stats.sent = seq;
    }
}

/// Wait until `t_ns` (epoch ns) to the microsecond: true then, false on a stop first.
async fn wait_until_async(
    sh: &Shared,
    timer: &mut Option<super::timer::PreciseTimer>,
    t_ns: i64,
) -> bool {
    loop {
        let now = sh.clock.now_ns();
        if now >= t_ns {
            return true;
        }
        if sh.stop_reason().is_some() {
            return false;
        }
        let d = Duration::from_nanos((t_ns - now).min(10_000_000) as u64);
        let slept = match timer.as_mut() {
            Some(t) => t.sleep(d).await.is_ok(),
            None => false,
        };
        if !slept {
            *timer = None;
            tokio::time::sleep(d).await;
        }
    }
}

fn cores() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// The clients of each of `n` client threads: thread `t` drives clients `t`, `t + n`, ...
/// (so client `i` records into shard `i % n`, see [`Shared::agg`]).
fn thread_shares(load: &Load, n: u32) -> Vec<Vec<u32>> {
    let n = n.max(1);
    (0..n)
        .map(|t| (t..load.clients.max(1)).step_by(n as usize).collect())
        .collect()
}

/// The closed-loop drivers of `client` ([`Client::closed_driver`]): one per client thread
/// (one in all for a kind without client threads), each with that thread's share of the
/// clients as [`ClientThreads`] deals them; None when the client has none.
async fn closed_drivers(
    client: &dyn Client,
    kind: ServiceKind,
    load: &Load,
) -> Result<Option<Vec<Box<dyn ClosedDriver>>>, ClientError> {
    let n = if kind.spec().client_threads() {
        load.client_threads_for(cores())
    } else {
        1
    };
    let mut drivers = Vec::with_capacity(n as usize);
    for ids in thread_shares(load, n) {
        match client.closed_driver(&ids).await? {
            Some(d) => drivers.push(d),
            None => return Ok(None),
        }
    }
    Ok(Some(drivers))
}

/// Run each driver on a thread of its own under the closed loop `cl` of `clients` clients; returns why the loop
/// ended and the busiest thread's share of its time on the CPU (0–1) while it drove.
async fn run_drivers(
    sh: &Arc<Shared>,
    drivers: Vec<Box<dyn ClosedDriver>>,
    clients: u32,
    cl: ClosedLoop,
) -> (StopReason, Option<f64>) {
    let runs: Vec<_> = drivers
        .into_iter()
        .map(|driver| {
            let mut ctl = Driven {
                sh: sh.clone(),
                cl: cl.clone(),
                k: vec![0; clients as usize],
                counted: vec![None; clients as usize],
            };
            tokio::task::spawn_blocking(move || {
                let (cpu0, t0) = (thread_cpu_s(), std::time::Instant::now());
                driver.run(&mut ctl);
                let wall_s = t0.elapsed().as_secs_f64();
                (wall_s > 0.0).then(|| ((thread_cpu_s() - cpu0) / wall_s).clamp(0.0, 1.0))
            })
        })
        .collect();
    let mut busiest: Option<f64> = None;
    for r in runs {
        if let Ok(Some(b)) = r.await {
            busiest = Some(busiest.map_or(b, |x| x.max(b)));
        }
    }
    (cl.stop_reason(sh), busiest)
}

/// The engine's side of a client-driven closed loop ([`ClosedDriver`]): the schedule, budget
/// and stop rules of [`closed_client`], and the same recording.
struct Driven {
    sh: Arc<Shared>,
    cl: ClosedLoop,
    /// Requests handed out per client (sequence numbers interleave clients, as
    /// [`closed_client`]'s).
    k: Vec<u64>,
    /// Per client, the request counted in flight. A driver may hand out a client's next
    /// request before it records the last one (the next goes out first): the count then
    /// passes from the one to the other, so that a closed loop never shows more requests in
    /// flight than it has clients.
    counted: Vec<Option<u64>>,
}

impl DriverCtl for Driven {
    fn wait_start(&self) {
        let wait = self.cl.0.started_ns - self.sh.clock.now_ns();
        if wait > 0 {
            std::thread::sleep(Duration::from_nanos(wait as u64));
        }
    }

    fn now_ns(&self) -> i64 {
        self.sh.clock.now_ns()
    }

    fn next(&mut self, client: u32) -> Option<(u64, i64)> {
        if self.sh.stop_reason().is_some() {
            return None;
        }
        let c = &*self.cl.0;
        let now = self.sh.clock.now_ns();
        if now >= c.end_ns {
            self.cl.end(StopReason::Duration);
            return None;
        }
        if now >= c.measure_start_ns {
            if let Some(n) = c.load.requests {
                if c.issued.fetch_add(1, Ordering::SeqCst) >= n {
                    self.cl.end(StopReason::Requests);
                    return None;
                }
            }
        }
        let clients = self.k.len() as u64;
        let k = self.k.get_mut(client as usize)?;
        let seq = *k * clients + u64::from(client);
        *k += 1;
        if let Some(c) = self.counted.get_mut(client as usize) {
            if c.replace(seq).is_none() {
                let f = &self.sh.counters_of(client).in_flight;
                f.fetch_add(1, Ordering::SeqCst);
            }
        }
        Some((seq, now))
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
        // Closed loop: a request is scheduled when it is sent.
        self.sh.record(
            client,
            seq,
            sent_ns,
            sent_ns,
            first_byte_ns,
            done_ns,
            sent_ns,
            o,
        );
        if let Some(c) = self.counted.get_mut(client as usize) {
            if *c == Some(seq) {
                *c = None;
                let f = &self.sh.counters_of(client).in_flight;
                f.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    fn stopping(&self) -> bool {
        self.sh.stop_reason().is_some()
    }

    fn timeout_ns(&self) -> i64 {
        self.sh.timeout.as_nanos() as i64
    }

    fn grace_ns(&self) -> i64 {
        self.sh.timeout.min(DRAIN_AFTER_SIGNAL).as_nanos() as i64
    }

    fn seed(&self) -> u64 {
        self.sh.seed
    }
}

async fn closed_client(sh: Arc<Shared>, client: u32, worker: Box<dyn Worker>, cl: ClosedLoop) {
    let ClosedLoopInner {
        load,
        started_ns,
        measure_start_ns,
        end_ns,
        issued,
        ..
    } = &*cl.0;
    let (started_ns, measure_start_ns, end_ns) = (*started_ns, *measure_start_ns, *end_ns);
    let clients = load.clients.max(1) as u64;
    let rate = load.target_rate_per_client_per_s;
    let pace_ns = load.is_paced().then(|| (1e9 / rate) as i64);
    let mut next_ns = started_ns + (client as i64 * pace_ns.unwrap_or(0)) / clients as i64;
    let mut worker = Some(worker);
    let mut k: u64 = 0;
    let mut guards = Guards::new(&sh);
    loop {
        if sh.stop_reason().is_some() {
            return;
        }
        if pace_ns.is_some() {
            let now = sh.clock.now_ns();
            if next_ns > now {
                tokio::time::sleep_until(sh.clock.instant(next_ns).into()).await;
            }
        } else if k == 0 {
            tokio::time::sleep_until(sh.clock.instant(started_ns).into()).await;
        }
        if sh.stop_reason().is_some() {
            return;
        }
        let now = sh.clock.now_ns();
        if now >= end_ns {
            cl.end(StopReason::Duration);
            return;
        }
        if now >= measure_start_ns {
            if let Some(n) = load.requests {
                if issued.fetch_add(1, Ordering::SeqCst) >= n {
                    cl.end(StopReason::Requests);
                    return;
                }
            }
        }
        // Sequence numbers: client-interleaved so they are unique across clients.
        let seq = k * clients + client as u64;
        k += 1;
        sh.counters_of(client)
            .in_flight
            .fetch_add(1, Ordering::SeqCst);
        // Closed loop: the request is scheduled when it is sent (now).
        worker = sh
            .one_request(worker.take(), client, seq, now, now, now, Some(&mut guards))
            .await;
        sh.counters_of(client)
            .in_flight
            .fetch_sub(1, Ordering::SeqCst);
        if let Some(p) = pace_ns {
            next_ns += p;
        }
    }
}

struct TickerCfg {
    kind: ServiceKind,
    target_rate_total_per_s: Option<f64>,
    planned_s: f64,
    max_error_rate: Option<f64>,
    started_ns: i64,
    observers: Vec<Arc<dyn LiveObserver>>,
}

fn quantiles(h: &Histogram<u64>) -> Quantiles {
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    Quantiles {
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        max_ms: h.max() as f64 / 1000.0,
    }
}

/// The error-rate gate, over every completed request so far (at least 10): sets the local
/// stop when the rate exceeds `max_error_rate`.
fn check_error_rate(sh: &Shared, max_error_rate: Option<f64>) {
    let Some(max) = max_error_rate else { return };
    let n = sh.total(|c| &c.completed);
    let e = sh.total(|c| &c.errors) - sh.total(|c| &c.by_class[class_index(ErrorClass::Cancelled)]);
    if n >= 10 && e as f64 / n as f64 > max && !sh.error_stop.load(Ordering::SeqCst) {
        tracing::error!(
            "[{}] error rate {:.1}% exceeds max_error_rate {:.1}%: stopping the run",
            sh.service,
            e as f64 * 100.0 / n as f64,
            max * 100.0
        );
        sh.error_stop.store(true, Ordering::SeqCst);
    }
}

/// Once a second: samples into the store, a snapshot to the observers, the error-rate gate.
async fn ticker(sh: Arc<Shared>, cfg: TickerCfg, phase: Arc<AtomicU8>) {
    let clock = sh.clock;
    let mut last_ns = clock.now_ns();
    let mut last_cpu = process_cpu_s();
    let mut tick_at = cfg.started_ns + 1_000_000_000;
    // Whole seconds in a row with connect/timeout errors and no success.
    let mut silent_s: u32 = 0;
    let unanswered = |sh: &Shared| {
        sh.total(|c| &c.by_class[class_index(ErrorClass::Connect)])
            + sh.total(|c| &c.by_class[class_index(ErrorClass::Timeout)])
    };
    let mut unanswered_before = unanswered(&sh);
    loop {
        let done = phase.load(Ordering::SeqCst) == 2;
        if !done {
            // Sleep to the next whole second of the run, waking early when the run ends.
            while clock.now_ns() < tick_at && phase.load(Ordering::SeqCst) != 2 {
                let left = (tick_at - clock.now_ns()).clamp(0, 20_000_000);
                tokio::time::sleep(Duration::from_nanos(left as u64)).await;
            }
        }
        let done = phase.load(Ordering::SeqCst) == 2;
        let now = clock.now_ns();
        tick_at += 1_000_000_000;
        let dt_s = ((now - last_ns) as f64 / 1e9).max(1e-6);
        last_ns = now;
        let (iv_done, iv_errors, lat, lag_p99_ms, ttft, tpot, success_duration) = {
            // Each shard's interval, taken and reset under its own lock, then merged.
            let mut iv = Agg::new(&sh.run_id, 0);
            for m in sh.agg.iter() {
                let mut a = m.lock().expect("agg lock");
                iv.iv_done += a.iv_done;
                iv.iv_errors += a.iv_errors;
                let _ = iv.iv_latency.add(&a.iv_latency);
                let _ = iv.iv_lag.add(&a.iv_lag);
                let _ = iv.iv_ttft.add(&a.iv_ttft);
                let _ = iv.iv_tpot.add(&a.iv_tpot);
                iv.success_duration.merge(&a.success_duration);
                a.iv_done = 0;
                a.iv_errors = 0;
                a.iv_latency.reset();
                a.iv_lag.reset();
                a.iv_ttft.reset();
                a.iv_tpot.reset();
            }
            let q = |h: &Histogram<u64>| (!h.is_empty()).then(|| quantiles(h));
            (
                iv.iv_done,
                iv.iv_errors,
                q(&iv.iv_latency),
                iv.iv_lag.value_at_quantile(0.99) as f64 / 1000.0,
                q(&iv.iv_ttft),
                q(&iv.iv_tpot),
                iv.success_duration,
            )
        };
        let cpu = process_cpu_s();
        let cpu_pct = ((cpu.0 + cpu.1) - (last_cpu.0 + last_cpu.1)) / dt_s * 100.0;
        last_cpu = cpu;
        let achieved = iv_done as f64 / dt_s;
        let in_flight = sh.total(|c| &c.in_flight);
        if now > cfg.started_ns && (iv_done > 0 || !done) {
            let s = |name: &'static str, v: f64| sh.store.sample(&sh.run_id, now, name, v);
            s("achieved_rps", achieved);
            s("in_flight", in_flight as f64);
            s("errors", iv_errors as f64);
            s("schedule_lag_p99_ms", lag_p99_ms);
            s("runner_cpu_percent", cpu_pct);
            if let Some(l) = &lat {
                s("latency_p99_ms", l.p99_ms);
            }
        }
        // A service of this job's that stops answering (its port closed, or hung past the
        // request timeout) is named like one that exited.
        let unanswered_now = unanswered(&sh);
        if sh.global_stop.2.load(Ordering::SeqCst) && !done {
            let ok = iv_done.saturating_sub(iv_errors);
            if ok == 0 && unanswered_now > unanswered_before {
                silent_s += 1;
            } else if ok > 0 {
                silent_s = 0;
            }
            if silent_s >= SILENT_S && sh.global_stop.service_exit().is_none() {
                let at = humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + Duration::from_nanos(now.max(0) as u64),
                )
                .to_string();
                let msg = format!(
                    "the service stopped answering at {at} (no successful answer for {SILENT_S} s; {} connect errors and timeouts so far)",
                    unanswered_now
                );
                tracing::error!("[{}] {msg}: stopping the run", sh.service);
                sh.global_stop.service_exited(msg);
            }
        }
        unanswered_before = unanswered_now;
        check_error_rate(&sh, cfg.max_error_rate);
        if !cfg.observers.is_empty() {
            let mut by_class = BTreeMap::new();
            for (i, c) in ErrorClass::ALL.iter().enumerate() {
                let v = sh.total(|c| &c.by_class[i]);
                if v > 0 {
                    by_class.insert(c.as_str(), v);
                }
            }
            let p = phase.load(Ordering::SeqCst);
            let snap = LiveSnapshot {
                run_id: sh.run_id.to_string(),
                service: sh.service.clone(),
                kind: cfg.kind,
                phase: match p {
                    2 => Phase::Done,
                    1 => Phase::Drain,
                    _ if now < sh.measure_start_ns => Phase::Warmup,
                    _ => Phase::Measure,
                },
                t_ns: now,
                elapsed_s: ((now - cfg.started_ns) as f64 / 1e9).max(0.0),
                planned_s: cfg.planned_s,
                requests_total: sh.total(|c| &c.completed),
                errors_total: sh.total(|c| &c.errors),
                errors_by_class: by_class,
                in_flight,
                achieved_rps: achieved,
                target_rate_total_per_s: cfg.target_rate_total_per_s,
                latency: lat,
                ttft,
                tpot,
                schedule_lag_p99_ms: lag_p99_ms,
                bytes_sent_total: sh.total(|c| &c.bytes_sent),
                bytes_received_total: sh.total(|c| &c.bytes_received),
                input_tokens_total: sh.total(|c| &c.input_tokens),
                output_tokens_total: sh.total(|c| &c.output_tokens),
                runner_cpu_percent: cpu_pct,
                success_duration,
            };
            for o in &cfg.observers {
                o.tick(&snap);
            }
        }
        if done {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(waited: u64, sent: u64, sched_p99_ms: f64, not_sent_conn: u64) -> bool {
        let dispatch = DispatchStats {
            connections: 8,
            waited_for_connection: waited,
            not_sent: not_sent_conn,
            not_sent_connection_limited: not_sent_conn,
            sent,
        };
        let (_, metrics) = judge_generator(
            "svc",
            &Load {
                clients: 2,
                arrival: Arrival::Constant,
                target_rate_per_client_per_s: 200.0,
                duration_s: 10.0,
                requests: None,
                warmup_s: 2.0,
                seed: 1,
                max_error_rate: None,
                timeout_s: 30.0,
                max_in_flight: 8,
                connections_per_client: 4,
                client_threads: None,
                measure_from_ns: None,
            },
            &dispatch,
            true,
            &Lags {
                gen_p99_ms: 1.0,
                sched_p99_ms,
                gen_ms: [(50, 0.1), (90, 0.5), (999, 2.0)],
            },
            &crate::runner::hiccup::Hiccups::default(),
        );
        metrics
            .iter()
            .any(|m| m.name == "connection_limited" && m.value == 1.0)
    }

    #[test]
    fn requests_cut_at_the_end_are_saturation_only_beyond_the_lag_limit() {
        use crate::model::backlog_over_limit;
        // 26 requests at 40,000 req/s are 0.65 ms of the schedule: an on-time generator.
        assert!(!backlog_over_limit(26.0, Some(40_000.0)));
        // 300 are 7.5 ms: it fell behind.
        assert!(backlog_over_limit(300.0, Some(40_000.0)));
        // No target rate (a closed loop paced per client): any request never sent counts.
        assert!(backlog_over_limit(1.0, None));
        assert!(!backlog_over_limit(0.0, None));
    }

    #[test]
    fn waits_that_cannot_reach_the_p99_do_not_limit_the_run() {
        // 7 of 4,800 requests waited (0.15 %): a schedule lag p99 over the limit is not theirs.
        assert!(!limited(7, 4800, 5.3, 0));
        // 1 % or more did wait: they are in the p99.
        assert!(limited(48, 4800, 5.3, 0));
        // Requests never sent for want of a connection limit the run however few waited.
        assert!(limited(7, 4800, 1.0, 3));
        // Waits that kept the lag within the limit do not.
        assert!(!limited(480, 4800, 2.0, 0));
    }
}
