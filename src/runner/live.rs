//! Live view of a running service, delivered once per second (and once at the end) to
//! observers: the progress display, the Pushgateway pusher, tests.
//!
//! Implement [`LiveObserver`] (or use [`watch_observer`] for a `tokio::sync::watch` receiver)
//! and pass it in [`super::engine::EngineConfig::observers`].

use super::client::ErrorClass;
use crate::recipe::ServiceKind;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Warmup,
    Measure,
    /// Load generation stopped; waiting for requests in flight.
    Drain,
    Done,
}

/// Latency quantiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Quantiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LiveSnapshot {
    pub run_id: String,
    pub service: String,
    pub kind: ServiceKind,
    pub phase: Phase,
    /// When this snapshot was taken (epoch ns).
    pub t_ns: i64,
    /// Seconds since load started (warmup included).
    pub elapsed_s: f64,
    /// Planned warmup + duration, seconds.
    pub planned_s: f64,
    /// Requests completed so far (warmup included).
    pub requests_total: u64,
    pub errors_total: u64,
    /// Errors so far by `ErrorClass::as_str`.
    pub errors_by_class: BTreeMap<&'static str, u64>,
    pub in_flight: u64,
    /// Completions per second over the last interval.
    pub achieved_rps: f64,
    /// Target total rate, requests/s ([`crate::recipe::Load::target_rate_total_per_s`]);
    /// `None` for an unthrottled closed loop.
    #[serde(rename = "target_rps")]
    pub target_rate_total_per_s: Option<f64>,
    /// Latency from scheduled start (coordinated-omission corrected) over the last interval;
    /// `None` when nothing completed in it.
    pub latency: Option<Quantiles>,
    /// LLM time to first token (sent → first token) of successful requests over the last
    /// interval; `None` when none completed in it or the service is not an LLM.
    pub ttft: Option<Quantiles>,
    /// LLM time per output token after the first, over the last interval.
    pub tpot: Option<Quantiles>,
    /// p99 of (sent - scheduled) over the last interval, ms.
    pub schedule_lag_p99_ms: f64,
    pub bytes_sent_total: u64,
    pub bytes_received_total: u64,
    pub input_tokens_total: u64,
    pub output_tokens_total: u64,
    /// The runner process's CPU use over the last interval, percent of one core.
    pub runner_cpu_percent: f64,
    /// Sent → done of every successful request so far (cumulative; the compatibility
    /// histogram `benchmark_request_duration_seconds`).
    #[serde(skip)]
    pub success_duration: crate::compat::DurationHistogram,
}

pub trait LiveObserver: Send + Sync {
    /// Called from the engine's ticker task; keep it quick (do network I/O elsewhere).
    fn tick(&self, snap: &LiveSnapshot);
}

struct WatchObserver(tokio::sync::watch::Sender<Option<LiveSnapshot>>);

impl LiveObserver for WatchObserver {
    fn tick(&self, snap: &LiveSnapshot) {
        self.0.send_replace(Some(snap.clone()));
    }
}

/// An observer that publishes the latest snapshot on a watch channel.
pub fn watch_observer() -> (
    Arc<dyn LiveObserver>,
    tokio::sync::watch::Receiver<Option<LiveSnapshot>>,
) {
    let (tx, rx) = tokio::sync::watch::channel(None);
    (Arc::new(WatchObserver(tx)), rx)
}

pub(crate) fn class_index(c: ErrorClass) -> usize {
    ErrorClass::ALL.iter().position(|x| *x == c).unwrap_or(0)
}
