//! The one reader of a compared metric ([`crate::recipe::threshold::METRICS`]) from a run's or
//! an aggregate's figures. `compare`, `history` and the batch intervals of
//! [`super::analysis`] all read metrics through it, so a metric means the same everywhere.

use super::model::{LlmStats, OpStats};

/// The value of `name` from totals and LLM figures; `None` where the metric does not apply
/// (no successful request, not an LLM service, no SLO for goodput, no bytes for MB/s).
pub fn value(name: &str, total: &OpStats, llm: Option<&LlmStats>) -> Option<f64> {
    let lat = total.latency_corrected_ms.as_ref();
    match name {
        "throughput_ops_per_s" => Some(total.throughput_ops_per_s),
        "throughput_mb_per_s" => {
            (total.throughput_mb_per_s > 0.0).then_some(total.throughput_mb_per_s)
        }
        "error_rate" => Some(total.error_rate),
        "latency_p50_ms" => lat.map(|l| l.p50),
        "latency_p90_ms" => lat.map(|l| l.p90),
        "latency_p99_ms" => lat.map(|l| l.p99),
        "latency_p999_ms" => lat.map(|l| l.p999),
        "latency_mean_ms" => lat.map(|l| l.mean),
        "latency_uncorrected_p99_ms" => total.latency_uncorrected_ms.as_ref().map(|l| l.p99),
        "ttft_p50_ms" => llm?.ttft_ms.as_ref().map(|l| l.p50),
        "ttft_p99_ms" => llm?.ttft_ms.as_ref().map(|l| l.p99),
        "tpot_p99_ms" => llm?.tpot_ms.as_ref().map(|l| l.p99),
        "itl_p99_ms" => llm?.itl_ms.as_ref().map(|l| l.p99),
        "e2el_p99_ms" => llm?.e2el_ms.as_ref().map(|l| l.p99),
        "output_tokens_per_s" => llm.map(|l| l.output_tokens_per_s),
        "goodput_ratio" => llm?.goodput.as_ref().map(|g| g.goodput_ratio),
        _ => None,
    }
}
