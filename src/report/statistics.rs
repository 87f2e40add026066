//! Mergeable accumulators behind the figures of [`super::model`]: HDR histograms with exact
//! moments ([`Acc`]), per operation ([`OpAcc`]) and LLM ([`LlmAcc`]) sums, and the SLO spec.

use super::model::*;
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// Histogram resolution: values are recorded in thousandths of the reported unit
/// (µs for figures reported in ms).
const HIST_PER_UNIT: f64 = 1000.0;

/// A mergeable distribution: HDR histogram (thousandths of the unit) + exact moments.
#[derive(Clone)]
pub struct Acc {
    pub(crate) hist: Histogram<u64>,
    pub(crate) n: u64,
    pub(crate) mean: f64,
    pub(crate) m2: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Default for Acc {
    fn default() -> Self {
        Acc::new()
    }
}

impl Acc {
    pub fn new() -> Self {
        Acc {
            hist: Histogram::new(3).expect("3 significant digits is valid"),
            n: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// A smaller accumulator (2 significant digits: error ≤ 1 %) for the time batches of
    /// [`BatchAcc`], whose values only estimate a spread.
    pub fn compact() -> Self {
        Acc {
            hist: Histogram::new(2).expect("2 significant digits is valid"),
            ..Acc::new()
        }
    }

    /// Record a value in the reported unit (ms, tokens/s).
    pub fn record(&mut self, v: f64) {
        let v = if v.is_finite() { v.max(0.0) } else { 0.0 };
        let _ = self.hist.record((v * HIST_PER_UNIT).round() as u64);
        self.n += 1;
        let d = v - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (v - self.mean);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Record a duration in nanoseconds, reported in ms.
    pub fn record_ns(&mut self, ns: i64) {
        self.record(ns as f64 / 1e6);
    }

    pub fn merge(&mut self, o: &Acc) {
        if o.n == 0 {
            return;
        }
        let _ = self.hist.add(&o.hist);
        let n = self.n + o.n;
        let d = o.mean - self.mean;
        self.mean += d * o.n as f64 / n as f64;
        self.m2 += o.m2 + d * d * self.n as f64 * o.n as f64 / n as f64;
        self.n = n;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }

    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }

    /// Nearest-rank quantile: the smallest recorded value with at least ⌈q·n⌉ values ≤ it.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let n = self.hist.len();
        let rank = ((q * n as f64) - 1e-9).ceil().clamp(1.0, n as f64);
        // hdrhistogram takes ⌈q'·n⌉ as the rank; aim at the middle of the rank to avoid
        // floating-point edge effects (0.99 · 100 = 99.00000000000001).
        let q2 = (rank - 0.5) / n as f64;
        let v = self.hist.value_at_quantile(q2) as f64 / HIST_PER_UNIT;
        v.clamp(self.min, self.max)
    }

    /// The standard error of the `q` quantile from its distribution-free order-statistic
    /// interval: the values at ranks n·q ∓ 1.96·√(n·q·(1−q)) span ±1.96 standard errors.
    /// `None` for fewer than two values.
    pub fn quantile_stderr(&self, q: f64) -> Option<f64> {
        let n = self.hist.len();
        if n < 2 {
            return None;
        }
        let nf = n as f64;
        let half = 1.96 * (nf * q * (1.0 - q)).sqrt();
        let rank = |r: f64| (r.clamp(1.0, nf) - 0.5) / nf;
        let at = |r: f64| {
            (self.hist.value_at_quantile(rank(r)) as f64 / HIST_PER_UNIT).clamp(self.min, self.max)
        };
        let (lo, hi) = (
            at((nf * q - half).floor()),
            at((nf * q + half).ceil() + 1.0),
        );
        Some((hi - lo).max(0.0) / (2.0 * 1.96))
    }

    pub fn summary(&self) -> Option<Summary> {
        if self.n == 0 {
            return None;
        }
        let var = if self.n > 1 {
            self.m2 / (self.n - 1) as f64
        } else {
            0.0
        };
        let sd = var.max(0.0).sqrt();
        let half = if self.n > 1 {
            crate::capacity::t95((self.n - 1) as usize) * sd / (self.n as f64).sqrt()
        } else {
            0.0
        };
        Some(Summary {
            count: self.n,
            min: self.min,
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p95: self.quantile(0.95),
            p99: self.quantile(0.99),
            p999: self.quantile(0.999),
            max: self.max,
            mean: self.mean,
            mean_ci95_low: self.mean - half,
            mean_ci95_high: self.mean + half,
            stddev: sd,
            cv: (self.mean != 0.0).then(|| sd / self.mean),
        })
    }

    pub(crate) fn cdf(&self) -> Vec<CdfPoint> {
        if self.n == 0 {
            return Vec::new();
        }
        const QS: [f64; 20] = [
            0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995,
            0.999, 0.9995, 0.9999, 0.99999, 1.0,
        ];
        QS.iter()
            .map(|&q| CdfPoint {
                quantile: q,
                value: if q == 0.0 {
                    self.min
                } else if q == 1.0 {
                    self.max
                } else {
                    self.quantile(q)
                },
            })
            .collect()
    }

    pub(crate) fn log_histogram(&self) -> Vec<HistogramBucket> {
        if self.n == 0 {
            return Vec::new();
        }
        let mut out: Vec<HistogramBucket> = self
            .hist
            .iter_log(1, 1.5)
            .map(|v| HistogramBucket {
                upper: v.value_iterated_to() as f64 / HIST_PER_UNIT,
                count: v.count_since_last_iteration(),
            })
            .collect();
        while out.first().is_some_and(|b| b.count == 0) {
            out.remove(0);
        }
        while out.last().is_some_and(|b| b.count == 0) {
            out.pop();
        }
        out
    }
}

#[derive(Clone, Default)]
pub(crate) struct OpAcc {
    pub(crate) requests: u64,
    pub(crate) ok: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) corrected: Acc,
    pub(crate) uncorrected: Acc,
}

impl OpAcc {
    fn compact() -> Self {
        OpAcc {
            corrected: Acc::compact(),
            uncorrected: Acc::compact(),
            ..OpAcc::default()
        }
    }

    /// Record one measured request (latencies of successful ones only).
    pub(crate) fn record(&mut self, r: &RequestTimes, error_class: Option<&[u8]>) {
        self.requests += 1;
        if r.ok {
            self.ok += 1;
            self.bytes_sent += r.bytes_sent;
            self.bytes_received += r.bytes_received;
            self.corrected.record_ns(r.done_ns - r.scheduled_ns);
            self.uncorrected.record_ns(r.done_ns - r.sent_ns);
        } else {
            let class = match error_class {
                Some(t) => String::from_utf8_lossy(t).into_owned(),
                None => "unknown".to_string(),
            };
            *self.errors.entry(class).or_default() += 1;
        }
    }

    pub(crate) fn merge(&mut self, o: &OpAcc) {
        self.requests += o.requests;
        self.ok += o.ok;
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.corrected.merge(&o.corrected);
        self.uncorrected.merge(&o.uncorrected);
    }

    pub(crate) fn finish(&self, op: &str, window_s: f64) -> OpStats {
        let errors = self.requests - self.ok;
        OpStats {
            op: op.to_string(),
            requests: self.requests,
            ok: self.ok,
            errors,
            error_rate: ratio(errors as f64, self.requests as f64),
            errors_by_class: self.errors.clone(),
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_received,
            throughput_ops_per_s: ratio(self.ok as f64, window_s),
            throughput_mb_per_s: ratio(
                (self.bytes_sent + self.bytes_received) as f64 / 1e6,
                window_s,
            ),
            latency_corrected_ms: self.corrected.summary(),
            latency_uncorrected_ms: self.uncorrected.summary(),
        }
    }
}

pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

#[derive(Clone, Default)]
pub(crate) struct LlmAcc {
    pub(crate) rows: u64,
    pub(crate) ttft: Acc,
    pub(crate) ttft_sched: Acc,
    pub(crate) itl: Acc,
    pub(crate) tpot: Acc,
    pub(crate) e2el: Acc,
    pub(crate) tok_rate: Acc,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) from_server: u64,
    pub(crate) counted: u64,
    pub(crate) zero_output: u64,
    pub(crate) good: u64,
}

impl LlmAcc {
    /// See [`Acc::compact`].
    pub(crate) fn compact() -> Self {
        LlmAcc {
            ttft: Acc::compact(),
            ttft_sched: Acc::compact(),
            itl: Acc::compact(),
            tpot: Acc::compact(),
            e2el: Acc::compact(),
            tok_rate: Acc::compact(),
            ..LlmAcc::default()
        }
    }

    /// Record the LLM figures of one successful request.
    pub(crate) fn record(&mut self, r: &RequestTimes, l: &LlmRow, slo: &SloSpec) {
        self.rows += 1;
        let out = l.output_tokens.unwrap_or(0).max(0) as u64;
        self.input_tokens += l.input_tokens.unwrap_or(0).max(0) as u64;
        self.output_tokens += out;
        match l.tokens_from_server {
            Some(1) => self.from_server += 1,
            Some(_) => self.counted += 1,
            None if l.output_tokens.is_some() => self.counted += 1,
            None => {}
        }
        if l.output_tokens.is_some() && out == 0 {
            self.zero_output += 1;
        }
        let e2el_ns = r.done_ns - r.sent_ns;
        self.e2el.record_ns(e2el_ns);
        if e2el_ns > 0 && l.output_tokens.is_some() {
            self.tok_rate.record(out as f64 / (e2el_ns as f64 / 1e9));
        }
        let ttft_ns = l.first_byte_ns.map(|fb| fb - r.sent_ns);
        if let Some(fb) = l.first_byte_ns {
            self.ttft.record_ns(fb - r.sent_ns);
            self.ttft_sched.record_ns(fb - r.scheduled_ns);
        }
        let mut tpot_ms = None;
        if let (Some(t), true) = (ttft_ns, out > 1) {
            let v = (e2el_ns - t) as f64 / 1e6 / (out - 1) as f64;
            self.tpot.record(v);
            tpot_ms = Some(v);
        }
        if let Some(b) = l.itl_us {
            for c in b.chunks_exact(4) {
                let us = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                self.itl.record(us as f64 / 1000.0);
            }
        }
        let meets = |limit: Option<f64>, v: Option<f64>| match (limit, v) {
            (None, _) => true,
            (Some(l), Some(v)) => v <= l,
            (Some(_), None) => false,
        };
        if meets(slo.ttft_ms, ttft_ns.map(|t| t as f64 / 1e6))
            && meets(slo.tpot_ms, tpot_ms.or(Some(0.0)))
            && meets(slo.e2el_ms, Some(e2el_ns as f64 / 1e6))
        {
            self.good += 1;
        }
    }

    pub(crate) fn merge(&mut self, o: &LlmAcc) {
        self.rows += o.rows;
        self.ttft.merge(&o.ttft);
        self.ttft_sched.merge(&o.ttft_sched);
        self.itl.merge(&o.itl);
        self.tpot.merge(&o.tpot);
        self.e2el.merge(&o.e2el);
        self.tok_rate.merge(&o.tok_rate);
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.from_server += o.from_server;
        self.counted += o.counted;
        self.zero_output += o.zero_output;
        self.good += o.good;
    }

    pub(crate) fn finish(&self, window_s: f64, requests: u64, slo: &SloSpec) -> LlmStats {
        let tokens_source = match (self.from_server, self.counted) {
            (0, 0) => TokenSource::None,
            (_, 0) => TokenSource::Server,
            (0, _) => TokenSource::Client,
            _ => TokenSource::Mixed,
        };
        LlmStats {
            ttft_ms: self.ttft.summary(),
            ttft_from_scheduled_ms: self.ttft_sched.summary(),
            itl_ms: self.itl.summary(),
            tpot_ms: self.tpot.summary(),
            e2el_ms: self.e2el.summary(),
            request_output_tokens_per_s: self.tok_rate.summary(),
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            tokens_source,
            zero_output_requests: self.zero_output,
            output_tokens_per_s: ratio(self.output_tokens as f64, window_s),
            total_tokens_per_s: ratio((self.input_tokens + self.output_tokens) as f64, window_s),
            goodput: slo.any().then(|| Goodput {
                slo_ttft_ms: slo.ttft_ms,
                slo_tpot_ms: slo.tpot_ms,
                slo_e2el_ms: slo.e2el_ms,
                good_requests: self.good,
                goodput_ratio: ratio(self.good as f64, requests as f64),
                goodput_rps: ratio(self.good as f64, window_s),
            }),
            ttft_histogram_ms: self.ttft.log_histogram(),
            request_output_tokens_per_s_histogram: self.tok_rate.log_histogram(),
        }
    }
}

#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub(crate) struct SloSpec {
    pub(crate) ttft_ms: Option<f64>,
    pub(crate) tpot_ms: Option<f64>,
    pub(crate) e2el_ms: Option<f64>,
}

impl SloSpec {
    pub(crate) fn from_recipe(recipe: &serde_json::Value) -> Self {
        let slo = &recipe["workload"]["slo"];
        SloSpec {
            ttft_ms: slo["ttft_ms"].as_f64(),
            tpot_ms: slo["tpot_ms"].as_f64(),
            e2el_ms: slo["e2el_ms"].as_f64(),
        }
    }

    pub(crate) fn any(&self) -> bool {
        self.ttft_ms.is_some() || self.tpot_ms.is_some() || self.e2el_ms.is_some()
    }
}

/// The times and sizes of one measured request that the accumulators read.
pub(crate) struct RequestTimes {
    pub(crate) ok: bool,
    pub(crate) scheduled_ns: i64,
    pub(crate) sent_ns: i64,
    pub(crate) done_ns: i64,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
}

/// The LLM columns of one request.
pub(crate) struct LlmRow<'a> {
    pub(crate) first_byte_ns: Option<i64>,
    pub(crate) input_tokens: Option<i64>,
    pub(crate) output_tokens: Option<i64>,
    pub(crate) tokens_from_server: Option<i64>,
    pub(crate) itl_us: Option<&'a [u8]>,
}

/// One time batch of a run's measured window (see [`super::judge`]): what its figures need,
/// in compact histograms.
#[derive(Clone)]
pub(crate) struct BatchAcc {
    pub(crate) total: OpAcc,
    pub(crate) llm: Option<LlmAcc>,
}

impl BatchAcc {
    pub(crate) fn new(llm: bool) -> Self {
        BatchAcc {
            total: OpAcc::compact(),
            llm: llm.then(LlmAcc::compact),
        }
    }

    pub(crate) fn merge(&mut self, o: &BatchAcc) {
        self.total.merge(&o.total);
        if let Some(l) = &o.llm {
            self.llm.get_or_insert_with(LlmAcc::compact).merge(l);
        }
    }
}

/// Everything mergeable about a run (for service aggregates).
#[derive(Clone)]
pub(crate) struct RunAccs {
    pub(crate) total: OpAcc,
    pub(crate) ops: BTreeMap<String, OpAcc>,
    pub(crate) llm: Option<LlmAcc>,
    pub(crate) slo: SloSpec,
    pub(crate) window_start_ns: i64,
    pub(crate) window_end_ns: i64,
    /// [`super::judge::BATCHES`] equal time batches of the measured window.
    pub(crate) batches: Vec<BatchAcc>,
}
