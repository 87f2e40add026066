//! Render the load engine's [`LiveSnapshot`] (delivered once a second to observers) into the
//! Pushgateway exposition.
//!
//! Counters (`_total`) are cumulative since the start of the run, warmup included; Prometheus
//! computes rates. Latency figures are the engine's quantiles over its last 1 s interval
//! (coordinated-omission corrected, from the scheduled send time), pushed as gauges with a
//! `quantile` label (the last interval that had completions: slow LLM requests may take longer
//! than one interval); absent until the first completion.

use super::expo::{Exposition, MetricType};
use super::live::LiveSource;
use crate::compat::{seed_exposition, CompatNames, SeedFigures};
use crate::runner::client::ErrorClass;
use crate::runner::live::{LiveObserver, LiveSnapshot, Phase, Quantiles};
use std::sync::Mutex;

/// Keeps the latest snapshot (an engine observer) and renders it on each push.
#[derive(Debug, Default)]
pub struct SnapshotSource {
    latest: Mutex<Option<LiveSnapshot>>,
    /// Also render the earlier tool's names (`monitoring.compat_metrics`).
    compat: Option<CompatNames>,
}

impl SnapshotSource {
    pub fn new() -> Self {
        Self::default()
    }

    /// Also push the compatibility names of `compat` (none: factorybench's names only).
    pub fn with_compat(mut self, compat: Option<CompatNames>) -> Self {
        self.compat = compat;
        self
    }

    pub fn latest(&self) -> Option<LiveSnapshot> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl LiveObserver for SnapshotSource {
    /// Keep the snapshot; quantiles of an interval without completions (slow LLM requests take
    /// longer than the engine's 1 s interval) keep the last interval's values that had some.
    fn tick(&self, snap: &LiveSnapshot) {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = snap.clone();
        if let Some(prev) = latest.as_ref() {
            next.latency = next.latency.or(prev.latency);
            next.ttft = next.ttft.or(prev.ttft);
            next.tpot = next.tpot.or(prev.tpot);
        }
        *latest = Some(next);
    }
}

impl LiveSource for SnapshotSource {
    fn render(&self, e: &mut Exposition) {
        if let Some(s) = self.latest() {
            render_snapshot(&s, e);
            if self.compat == Some(CompatNames::Seed) {
                e.raw(&seed_exposition(&seed_figures(&s)));
            }
        }
    }
}

/// The earlier tool's figures of a live snapshot (cumulative since the run started).
pub fn seed_figures(s: &LiveSnapshot) -> SeedFigures {
    SeedFigures {
        requests_total: s.requests_total,
        successful: s.requests_total.saturating_sub(s.errors_total),
        failed: s.errors_total,
        duration: Some(s.success_duration.clone()),
    }
}

fn quantile_family(e: &mut Exposition, name: &str, help: &str, q: &Quantiles) {
    e.family(name, MetricType::Gauge, help);
    for (label, ms) in [
        ("0.5", q.p50_ms),
        ("0.9", q.p90_ms),
        ("0.99", q.p99_ms),
        ("0.999", q.p999_ms),
        ("1", q.max_ms),
    ] {
        e.sample(name, &[("quantile", label)], ms / 1000.0);
    }
}

pub fn render_snapshot(s: &LiveSnapshot, e: &mut Exposition) {
    e.gauge(
        "run_start_time_seconds",
        "Unix time the run's load started.",
        s.t_ns as f64 / 1e9 - s.elapsed_s,
    );
    e.gauge(
        "run_elapsed_seconds",
        "Seconds since the run's load started (warmup included).",
        s.elapsed_s,
    );
    e.gauge(
        "run_planned_seconds",
        "Planned warmup + measured duration.",
        s.planned_s,
    );
    e.family(
        "run_phase",
        MetricType::Gauge,
        "1 for the phase the run is in (warmup, measure, drain, done).",
    );
    for (label, p) in [
        ("warmup", Phase::Warmup),
        ("measure", Phase::Measure),
        ("drain", Phase::Drain),
        ("done", Phase::Done),
    ] {
        e.sample(
            "run_phase",
            &[("phase", label)],
            if s.phase == p { 1.0 } else { 0.0 },
        );
    }
    e.counter(
        "requests_total",
        "Requests finished (successes and errors), warmup included.",
        s.requests_total as f64,
    );
    e.family(
        "request_errors_total",
        MetricType::Counter,
        "Requests that failed, by error class.",
    );
    for c in ErrorClass::ALL {
        let n = s.errors_by_class.get(c.as_str()).copied().unwrap_or(0);
        e.sample("request_errors_total", &[("class", c.as_str())], n as f64);
    }
    e.gauge(
        "achieved_requests_per_second",
        "Completions per second over the engine's last 1 s interval.",
        s.achieved_rps,
    );
    if let Some(t) = s.target_rate_total_per_s {
        e.gauge(
            "target_requests_per_second",
            "Target total request rate of the run (open loop).",
            t,
        );
    }
    e.gauge(
        "in_flight_requests",
        "Requests sent and not yet finished.",
        s.in_flight as f64,
    );
    e.gauge(
        "schedule_lag_p99_seconds",
        "p99 of (actual − scheduled send time) over the last interval: high values mean the load generator, not the service, is behind.",
        s.schedule_lag_p99_ms / 1000.0,
    );
    if let Some(q) = &s.latency {
        quantile_family(
            e,
            "request_latency_seconds",
            "Latency quantiles over the last 1 s interval with completions, from the scheduled send time to completion (coordinated-omission corrected); quantile 1 is the maximum.",
            q,
        );
    }
    e.counter(
        "bytes_sent_total",
        "Payload bytes sent to the service.",
        s.bytes_sent_total as f64,
    );
    e.counter(
        "bytes_received_total",
        "Payload bytes received from the service.",
        s.bytes_received_total as f64,
    );
    if let Some(q) = &s.ttft {
        quantile_family(
            e,
            "llm_ttft_seconds",
            "Time to first token (sent to first token) over the last 1 s interval with completions; quantile 1 is the maximum.",
            q,
        );
    }
    if let Some(q) = &s.tpot {
        quantile_family(
            e,
            "llm_tpot_seconds",
            "Time per output token after the first over the last 1 s interval with completions; quantile 1 is the maximum.",
            q,
        );
    }
    if s.kind.is_llm() {
        e.counter(
            "llm_input_tokens_total",
            "Prompt tokens sent.",
            s.input_tokens_total as f64,
        );
        e.counter(
            "llm_output_tokens_total",
            "Tokens generated.",
            s.output_tokens_total as f64,
        );
    }
}
