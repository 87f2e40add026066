//! LLM serving metrics: definitions and pure functions (no I/O, no clock).
//!
//! These match vLLM's `vllm bench serve` (`benchmarks/serve.py`, `calculate_metrics`) where vLLM
//! defines the metric, and say where and why factorybench differs. All inputs are the
//! per-request columns of `requests` in `src/store/schema.sql`.
//!
//! | metric | definition | columns |
//! |---|---|---|
//! | TTFT (from send) | first token − request sent. vLLM's `ttft`: `perf_counter()` at the first streamed chunk carrying a token, minus `perf_counter()` just before the POST | `first_byte_ns − sent_ns` |
//! | TTFT (from scheduled) | first token − intended start of an open-loop schedule. Includes the time a request waited for a free client: this is the coordinated-omission-free figure (vLLM has none) | `first_byte_ns − scheduled_ns` |
//! | ITL | every gap between consecutive token chunks, first→second, second→third, …; vLLM's `itl` list. Pooled over all requests for percentiles | `itl_us` blob (u32 LE µs) |
//! | E2EL | request sent → response complete. vLLM stops at the last chunk with a token; we stop when the stream ends (after the final usage/`[DONE]` frame, which follows the last token by microseconds) | `done_ns − sent_ns` |
//! | TPOT | (E2EL − TTFT) / (output_tokens − 1), only for requests with more than one output token; exactly vLLM's formula | |
//! | output tokens | server-reported (`usage.completion_tokens`, Ollama `eval_count`) when the server reports it, else counted token chunks; `tokens_from_server` says which | `output_tokens` |
//! | input tokens | server-reported (`usage.prompt_tokens`, `prompt_eval_count`), else the client's estimate of the prompt (see `prompts.rs`) | `input_tokens` |
//! | output tokens/s per request | output_tokens / E2EL | |
//! | output throughput | Σ output_tokens of successful requests / measured duration (vLLM `output_throughput`) | |
//! | total token throughput | Σ (input + output) tokens / measured duration (vLLM `total_token_throughput`) | |
//! | request throughput | successful requests / measured duration (vLLM `request_throughput`) | |
//! | goodput | successful requests meeting every SLO given (TTFT, TPOT, E2EL, each `≤`), as a share of all requests and per second of measured duration (vLLM `request_goodput`, req/s). A request with one output token has no TPOT and meets a TPOT SLO trivially, as in vLLM | |
//!
//! A "token chunk" is a streamed frame that carries generated text (OpenAI `choices[0].text` /
//! `delta.content`, Ollama `response` / `message.content` of a `done: false` line, Triton
//! `text_output`). Role-only, finish-only and usage-only frames are not tokens. When a server
//! packs several tokens into one chunk, ITL has one gap per chunk (as in vLLM) while
//! `output_tokens` is the server's count, so TPOT stays per token.
//!
//! Failed requests (any `error_class`) are excluded from every latency and token figure, as in
//! vLLM; they count in the denominator of the goodput share.

use crate::recipe::Slo;

/// Inter-token gaps (µs) from the first-token time and the times of every later token chunk.
/// Negative gaps (impossible with one monotonic clock) are clamped to 0; gaps above u32::MAX µs
/// (71 min) saturate.
pub fn itl_us(first_token_ns: i64, later_token_ns: &[i64]) -> Vec<u32> {
    let mut prev = first_token_ns;
    later_token_ns
        .iter()
        .map(|&t| {
            let gap_us = (t - prev).max(0) / 1_000;
            prev = t;
            gap_us.min(u32::MAX as i64) as u32
        })
        .collect()
}

/// The `requests.itl_us` column: little-endian u32 microseconds.
pub fn encode_itl_blob(itl_us: &[u32]) -> Vec<u8> {
    itl_us.iter().flat_map(|g| g.to_le_bytes()).collect()
}

/// Inverse of [`encode_itl_blob`]; a trailing partial value is ignored.
pub fn decode_itl_blob(blob: &[u8]) -> Vec<u32> {
    blob.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The blob straight from an `LlmOutcome`: first-token time + later token times.
pub fn itl_blob_from_token_times(
    first_token_ns: Option<i64>,
    later_token_ns: &[i64],
) -> Option<Vec<u8>> {
    let first = first_token_ns?;
    if later_token_ns.is_empty() {
        return None;
    }
    Some(encode_itl_blob(&itl_us(first, later_token_ns)))
}

/// TTFT in ms from a start (`sent_ns` or `scheduled_ns`) to the first token.
pub fn ttft_ms(start_ns: i64, first_token_ns: i64) -> f64 {
    (first_token_ns - start_ns) as f64 / 1e6
}

/// E2EL in ms.
pub fn e2el_ms(sent_ns: i64, done_ns: i64) -> f64 {
    (done_ns - sent_ns) as f64 / 1e6
}

/// TPOT in ms = (E2EL − TTFT) / (output_tokens − 1); `None` for 0 or 1 output tokens.
pub fn tpot_ms(e2el_ms: f64, ttft_ms: f64, output_tokens: u64) -> Option<f64> {
    (output_tokens > 1).then(|| (e2el_ms - ttft_ms) / (output_tokens - 1) as f64)
}

/// Output tokens per second of one request (output_tokens / E2EL).
pub fn output_tokens_per_s(output_tokens: u64, e2el_ms: f64) -> Option<f64> {
    (e2el_ms > 0.0).then(|| output_tokens as f64 / (e2el_ms / 1e3))
}

/// One successful request's latencies, for SLO checks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestLatency {
    pub ttft_ms: f64,
    /// `None` when the request had at most one output token.
    pub tpot_ms: Option<f64>,
    pub e2el_ms: f64,
}

impl RequestLatency {
    /// From the stored columns of a successful request (`None` without a first token).
    pub fn from_row(
        sent_ns: i64,
        first_token_ns: Option<i64>,
        done_ns: i64,
        output_tokens: u64,
    ) -> Option<Self> {
        let ttft = ttft_ms(sent_ns, first_token_ns?);
        let e2el = e2el_ms(sent_ns, done_ns);
        Some(RequestLatency {
            ttft_ms: ttft,
            tpot_ms: tpot_ms(e2el, ttft, output_tokens),
            e2el_ms: e2el,
        })
    }
}

/// Whether a request meets every SLO that is set (each is `≤`). No SLO set → true.
pub fn meets_slo(slo: &Slo, r: &RequestLatency) -> bool {
    let within = |limit: Option<f64>, value: Option<f64>| match (limit, value) {
        (Some(l), Some(v)) => v <= l,
        _ => true,
    };
    within(slo.ttft_ms, Some(r.ttft_ms))
        && within(slo.e2el_ms, Some(r.e2el_ms))
        && within(slo.tpot_ms, r.tpot_ms)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Goodput {
    /// Successful requests meeting every SLO.
    pub good: u64,
    /// All measured requests, failed ones included.
    pub total: u64,
    /// good / total (0 when total is 0).
    pub share: f64,
    /// good / measured duration (vLLM's `request_goodput`), req/s.
    pub good_rps: f64,
}

/// Goodput over the successful requests' latencies; `failed` requests count in the total.
pub fn goodput(slo: &Slo, ok: &[RequestLatency], failed: u64, duration_s: f64) -> Goodput {
    let good = ok.iter().filter(|r| meets_slo(slo, r)).count() as u64;
    let total = ok.len() as u64 + failed;
    Goodput {
        good,
        total,
        share: if total == 0 {
            0.0
        } else {
            good as f64 / total as f64
        },
        good_rps: if duration_s > 0.0 {
            good as f64 / duration_s
        } else {
            0.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itl_and_blob_roundtrip() {
        let first = 1_000_000_000;
        let later = [first + 20_000_000, first + 45_500_000, first + 45_500_000];
        let gaps = itl_us(first, &later);
        assert_eq!(gaps, vec![20_000, 25_500, 0]);
        let blob = encode_itl_blob(&gaps);
        assert_eq!(blob.len(), 12);
        assert_eq!(&blob[..4], &20_000u32.to_le_bytes());
        assert_eq!(decode_itl_blob(&blob), gaps);
        assert_eq!(itl_blob_from_token_times(Some(first), &later), Some(blob));
        assert_eq!(itl_blob_from_token_times(None, &later), None);
        assert_eq!(itl_blob_from_token_times(Some(first), &[]), None);
    }

    #[test]
    fn tpot_is_vllms_formula() {
        // sent 0, first token 100 ms, done 1100 ms, 11 tokens: 10 gaps over 1000 ms.
        let r = RequestLatency::from_row(0, Some(100_000_000), 1_100_000_000, 11).unwrap();
        assert_eq!(r.ttft_ms, 100.0);
        assert_eq!(r.e2el_ms, 1100.0);
        assert_eq!(r.tpot_ms, Some(100.0));
        assert_eq!(tpot_ms(50.0, 50.0, 1), None);
        assert_eq!(output_tokens_per_s(11, 1100.0), Some(10.0));
    }

    #[test]
    fn goodput_counts_failures_in_total() {
        let slo = Slo {
            ttft_ms: Some(200.0),
            tpot_ms: Some(50.0),
            e2el_ms: None,
        };
        let fast = RequestLatency {
            ttft_ms: 150.0,
            tpot_ms: Some(40.0),
            e2el_ms: 900.0,
        };
        let slow_ttft = RequestLatency {
            ttft_ms: 250.0,
            ..fast
        };
        let slow_tpot = RequestLatency {
            tpot_ms: Some(60.0),
            ..fast
        };
        let one_token = RequestLatency {
            tpot_ms: None,
            ..fast
        };
        let g = goodput(&slo, &[fast, slow_ttft, slow_tpot, one_token], 1, 10.0);
        assert_eq!((g.good, g.total), (2, 5));
        assert!((g.share - 0.4).abs() < 1e-12);
        assert!((g.good_rps - 0.2).abs() < 1e-12);
        assert!(meets_slo(&Slo::default(), &slow_ttft));
    }
}
