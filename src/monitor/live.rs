//! Live, cumulative statistics of one run, cheap to update per request and rendered into the
//! Pushgateway exposition on every push.
//!
//! Counters are cumulative since the start of the run (warmup included): Prometheus computes
//! rates with `rate()`. Latency is the coordinated-omission-corrected latency (done − scheduled),
//! the figure the report uses; histograms use fixed buckets in seconds.

use super::expo::{Exposition, HistogramData, MetricType};
use crate::runner::client::{ErrorClass, Outcome};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Upper bounds (seconds) of the request latency and TTFT histograms.
pub const LATENCY_BUCKETS_S: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0,
];

/// Upper bounds (seconds) of the time-per-output-token histogram.
pub const TPOT_BUCKETS_S: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5,
];

/// Anything that contributes samples to a push (live stats, node and GPU telemetry, the
/// runner's own snapshot).
pub trait LiveSource: Send + Sync {
    fn render(&self, out: &mut Exposition);
}

/// A fixed-bucket histogram (not cumulative inside; cumulated when rendered).
#[derive(Debug, Clone)]
struct Buckets {
    bounds: &'static [f64],
    counts: Vec<u64>,
    over: u64,
    sum: f64,
}

impl Buckets {
    fn new(bounds: &'static [f64]) -> Self {
        Buckets {
            bounds,
            counts: vec![0; bounds.len()],
            over: 0,
            sum: 0.0,
        }
    }

    fn observe(&mut self, v_s: f64) {
        let v = v_s.max(0.0);
        self.sum += v;
        match self.bounds.iter().position(|b| v <= *b) {
            Some(i) => self.counts[i] += 1,
            None => self.over += 1,
        }
    }

    fn data(&self) -> HistogramData {
        let mut acc = 0;
        let cumulative = self
            .counts
            .iter()
            .map(|c| {
                acc += c;
                acc
            })
            .collect();
        HistogramData {
            bounds: self.bounds.to_vec(),
            cumulative,
            count: acc + self.over,
            sum: self.sum,
        }
    }
}

#[derive(Debug, Clone)]
struct OpStats {
    requests: u64,
    errors: BTreeMap<&'static str, u64>,
    latency: Buckets,
    bytes_sent: u64,
    bytes_received: u64,
    input_tokens: u64,
    output_tokens: u64,
    ttft: Buckets,
    tpot: Buckets,
    llm: bool,
}

impl OpStats {
    fn new() -> Self {
        OpStats {
            requests: 0,
            errors: BTreeMap::new(),
            latency: Buckets::new(LATENCY_BUCKETS_S),
            bytes_sent: 0,
            bytes_received: 0,
            input_tokens: 0,
            output_tokens: 0,
            ttft: Buckets::new(LATENCY_BUCKETS_S),
            tpot: Buckets::new(TPOT_BUCKETS_S),
            llm: false,
        }
    }
}

/// The timestamps of one finished request (epoch ns, from the run's clock).
#[derive(Debug, Clone, Copy)]
pub struct RequestTimes {
    pub scheduled_ns: i64,
    pub sent_ns: i64,
    pub first_byte_ns: Option<i64>,
    pub done_ns: i64,
}

/// Live statistics of one run. Shared (`Arc`) between the load engine, which updates it,
/// and the pusher, which renders it.
#[derive(Debug)]
pub struct LiveStats {
    ops: Mutex<BTreeMap<&'static str, OpStats>>,
    in_flight: AtomicI64,
    /// Largest schedule lag (sent − scheduled, ns) since the last render.
    max_lag_ns: AtomicI64,
    /// Whether the run is still in its warmup phase.
    warmup: AtomicBool,
    /// Target total request rate ×1000 (0 = unthrottled / unknown).
    target_rate_milli: AtomicU64,
    started_ns: i64,
    /// Mark services whose ops are LLM requests even before the first token arrives.
    llm_service: bool,
}

impl LiveStats {
    pub fn new(started_ns: i64, target_rate: Option<f64>, llm_service: bool) -> Self {
        LiveStats {
            ops: Mutex::new(BTreeMap::new()),
            in_flight: AtomicI64::new(0),
            max_lag_ns: AtomicI64::new(0),
            warmup: AtomicBool::new(false),
            target_rate_milli: AtomicU64::new(
                target_rate
                    .map(|r| (r * 1000.0).round() as u64)
                    .unwrap_or(0),
            ),
            started_ns,
            llm_service,
        }
    }

    pub fn set_warmup(&self, warmup: bool) {
        self.warmup.store(warmup, Ordering::Relaxed);
    }

    /// A request was sent (`lag_ns` = sent − scheduled).
    pub fn on_sent(&self, lag_ns: i64) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.max_lag_ns.fetch_max(lag_ns, Ordering::Relaxed);
    }

    /// Set the in-flight gauge directly (engines that track it themselves).
    pub fn set_in_flight(&self, n: i64) {
        self.in_flight.store(n, Ordering::Relaxed);
    }

    /// Record a schedule lag without touching the in-flight gauge.
    pub fn observe_lag(&self, lag_ns: i64) {
        self.max_lag_ns.fetch_max(lag_ns, Ordering::Relaxed);
    }

    /// A request finished (after [`LiveStats::on_sent`]).
    pub fn on_done(&self, times: RequestTimes, outcome: &Outcome) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.observe(times, outcome);
    }

    /// Count a finished request without touching the in-flight gauge.
    pub fn observe(&self, t: RequestTimes, o: &Outcome) {
        let latency_s = (t.done_ns - t.scheduled_ns) as f64 / 1e9;
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        let s = ops.entry(o.op).or_insert_with(OpStats::new);
        s.requests += 1;
        if let Some(class) = o.error {
            *s.errors.entry(class.as_str()).or_insert(0) += 1;
        }
        s.latency.observe(latency_s);
        s.bytes_sent += o.bytes_sent;
        s.bytes_received += o.bytes_received;
        if let Some(llm) = &o.llm {
            s.llm = true;
            s.input_tokens += llm.input_tokens.unwrap_or(0);
            let out = llm.output_tokens.unwrap_or(0);
            s.output_tokens += out;
            if o.error.is_none() {
                if let Some(fb) = t.first_byte_ns {
                    s.ttft.observe((fb - t.sent_ns) as f64 / 1e9);
                    if out > 1 {
                        s.tpot
                            .observe((t.done_ns - fb) as f64 / 1e9 / (out - 1) as f64);
                    }
                }
            }
        } else if self.llm_service {
            s.llm = true;
        }
    }

    /// Requests completed so far (all operations).
    pub fn requests_total(&self) -> u64 {
        let ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        ops.values().map(|s| s.requests).sum()
    }
}

impl LiveSource for LiveStats {
    fn render(&self, e: &mut Exposition) {
        let ops = self.ops.lock().unwrap_or_else(|e| e.into_inner()).clone();
        e.gauge(
            "run_start_time_seconds",
            "Unix time the run started.",
            self.started_ns as f64 / 1e9,
        );
        e.gauge(
            "warmup",
            "1 while the run is in its warmup phase (requests not counted in results).",
            if self.warmup.load(Ordering::Relaxed) {
                1.0
            } else {
                0.0
            },
        );
        let target = self.target_rate_milli.load(Ordering::Relaxed);
        if target > 0 {
            e.gauge(
                "target_requests_per_second",
                "Target total request rate of the run (open loop).",
                target as f64 / 1000.0,
            );
        }
        e.gauge(
            "in_flight_requests",
            "Requests sent and not yet finished.",
            self.in_flight.load(Ordering::Relaxed).max(0) as f64,
        );
        e.gauge(
            "schedule_lag_seconds",
            "Largest delay between a request's scheduled and actual send time since the last push.",
            self.max_lag_ns.swap(0, Ordering::Relaxed).max(0) as f64 / 1e9,
        );

        e.family(
            "requests_total",
            MetricType::Counter,
            "Requests finished (successes and errors), warmup included.",
        );
        for (op, s) in &ops {
            e.sample("requests_total", &[("op", op)], s.requests as f64);
        }
        e.family(
            "request_errors_total",
            MetricType::Counter,
            "Requests that failed, by error class.",
        );
        for (op, s) in &ops {
            for class in ALL_CLASSES {
                let n = s.errors.get(class.as_str()).copied().unwrap_or(0);
                e.sample(
                    "request_errors_total",
                    &[("op", op), ("class", class.as_str())],
                    n as f64,
                );
            }
        }
        e.family(
            "request_duration_seconds",
            MetricType::Histogram,
            "Request latency from the scheduled send time to completion (corrected for coordinated omission).",
        );
        for (op, s) in &ops {
            e.histogram_series("request_duration_seconds", &[("op", op)], &s.latency.data());
        }
        e.family(
            "bytes_sent_total",
            MetricType::Counter,
            "Payload bytes sent to the service.",
        );
        for (op, s) in &ops {
            e.sample("bytes_sent_total", &[("op", op)], s.bytes_sent as f64);
        }
        e.family(
            "bytes_received_total",
            MetricType::Counter,
            "Payload bytes received from the service.",
        );
        for (op, s) in &ops {
            e.sample(
                "bytes_received_total",
                &[("op", op)],
                s.bytes_received as f64,
            );
        }
        if ops.values().any(|s| s.llm) {
            e.family(
                "llm_input_tokens_total",
                MetricType::Counter,
                "Prompt tokens sent.",
            );
            for (op, s) in ops.iter().filter(|(_, s)| s.llm) {
                e.sample(
                    "llm_input_tokens_total",
                    &[("op", op)],
                    s.input_tokens as f64,
                );
            }
            e.family(
                "llm_output_tokens_total",
                MetricType::Counter,
                "Tokens generated.",
            );
            for (op, s) in ops.iter().filter(|(_, s)| s.llm) {
                e.sample(
                    "llm_output_tokens_total",
                    &[("op", op)],
                    s.output_tokens as f64,
                );
            }
            e.family(
                "llm_ttft_seconds",
                MetricType::Histogram,
                "Time to first token of successful LLM requests.",
            );
            for (op, s) in ops.iter().filter(|(_, s)| s.llm) {
                e.histogram_series("llm_ttft_seconds", &[("op", op)], &s.ttft.data());
            }
            e.family(
                "llm_tpot_seconds",
                MetricType::Histogram,
                "Time per output token after the first, per successful LLM request.",
            );
            for (op, s) in ops.iter().filter(|(_, s)| s.llm) {
                e.histogram_series("llm_tpot_seconds", &[("op", op)], &s.tpot.data());
            }
        }
    }
}

/// Every error class, so error series exist (at 0) from the first push on.
const ALL_CLASSES: [ErrorClass; 9] = [
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::client::LlmOutcome;

    fn times(sched: i64, sent: i64, fb: Option<i64>, done: i64) -> RequestTimes {
        RequestTimes {
            scheduled_ns: sched,
            sent_ns: sent,
            first_byte_ns: fb,
            done_ns: done,
        }
    }

    #[test]
    fn counts_errors_bytes_and_buckets() {
        let s = LiveStats::new(1_000_000_000, Some(10.0), false);
        s.on_sent(5_000_000);
        let mut o = Outcome::ok("read");
        o.bytes_received = 4096;
        s.on_done(times(0, 0, None, 3_000_000), &o);
        s.on_sent(1_000_000);
        s.on_done(
            times(0, 0, None, 200_000_000),
            &Outcome::err("read", ErrorClass::Timeout, "t"),
        );
        let mut e = Exposition::new();
        s.render(&mut e);
        let text = e.into_string();
        assert!(text.contains("factorybench_requests_total{op=\"read\"} 2\n"));
        assert!(
            text.contains("factorybench_request_errors_total{op=\"read\",class=\"timeout\"} 1\n")
        );
        assert!(text.contains("factorybench_bytes_received_total{op=\"read\"} 4096\n"));
        assert!(text.contains(
            "factorybench_request_duration_seconds_bucket{op=\"read\",le=\"0.005\"} 1\n"
        ));
        assert!(text
            .contains("factorybench_request_duration_seconds_bucket{op=\"read\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("factorybench_schedule_lag_seconds 0.005\n"));
        assert!(text.contains("factorybench_in_flight_requests 0\n"));
        assert!(text.contains("factorybench_target_requests_per_second 10\n"));
        assert!(!text.contains("llm_"));
        // The lag gauge is per push interval: reset after rendering.
        let mut e = Exposition::new();
        s.render(&mut e);
        assert!(e.as_str().contains("factorybench_schedule_lag_seconds 0\n"));
    }

    #[test]
    fn llm_ttft_and_tpot() {
        let s = LiveStats::new(0, None, true);
        let mut o = Outcome::ok("generate");
        o.llm = Some(LlmOutcome {
            input_tokens: Some(10),
            output_tokens: Some(11),
            ..Default::default()
        });
        // TTFT 0.2 s, then 10 more tokens over 0.5 s -> TPOT 0.05 s.
        s.observe(times(0, 0, Some(200_000_000), 700_000_000), &o);
        let mut e = Exposition::new();
        s.render(&mut e);
        let text = e.into_string();
        assert!(text.contains("factorybench_llm_output_tokens_total{op=\"generate\"} 11\n"));
        assert!(
            text.contains("factorybench_llm_ttft_seconds_bucket{op=\"generate\",le=\"0.25\"} 1\n")
        );
        assert!(
            text.contains("factorybench_llm_ttft_seconds_bucket{op=\"generate\",le=\"0.1\"} 0\n")
        );
        assert!(
            text.contains("factorybench_llm_tpot_seconds_bucket{op=\"generate\",le=\"0.05\"} 1\n")
        );
        assert!(!text.contains("target_requests_per_second"));
    }
}
