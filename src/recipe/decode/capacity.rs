//! `capacity_search`: bounds, steps and SLOs of a service's capacity search
//! (docs/capacity.md). Every key is range-checked at its location; unknown keys get a
//! did-you-mean.

use super::fields::*;
use crate::capacity::SearchSpec;
use crate::recipe::plan::{CapacitySearch, CapacitySlo};
use crate::recipe::yaml::Node;

pub(crate) const KEYS: &[&str] = &[
    "min_rate",
    "max_rate",
    "ramp_factor",
    "bisect_steps",
    "repeats",
    "step_duration",
    "slo",
];
pub(crate) const SLO_KEYS: &[&str] = &[
    "latency_p99_ms",
    "ttft_p99_ms",
    "max_error_rate",
    "min_rate_ratio",
];

/// A number in `[min, max]` (`None` when absent or invalid; invalid is reported).
fn ranged(cx: &mut Ctx, f: &Fields, key: &str, min: f64, max: f64, what: &str) -> Option<f64> {
    let v = f.f64(cx, key)?;
    if !(min..=max).contains(&v) {
        cx.error(
            f.get(key).map(|n| n.pos).unwrap_or(f.pos()),
            &f.p(key),
            format!("`{key}` ({what}) must be between {min} and {max}, found {v}"),
        );
        return None;
    }
    Some(v)
}

pub(crate) fn decode_capacity_search(
    cx: &mut Ctx,
    n: &Node,
    path: &str,
    is_llm: bool,
) -> Option<CapacitySearch> {
    if n.as_map().is_none() {
        cx.error(
            n.pos,
            path,
            format!(
                "`capacity_search` must be a mapping (min_rate, max_rate, slo, ...), found a {}",
                n.type_name()
            ),
        );
        return None;
    }
    let errors = cx.error_count();
    cx.check_keys(n, path, KEYS, "`capacity_search`");
    let f = Fields::new(Some(n), path.to_string());
    let min_rate = ranged(
        cx,
        &f,
        "min_rate",
        0.001,
        1e7,
        "total requests/s of the first step",
    );
    let max_rate = ranged(
        cx,
        &f,
        "max_rate",
        0.001,
        1e7,
        "highest total requests/s tried",
    );
    if f.get("min_rate").is_none() {
        cx.error(
            f.pos(),
            path,
            "`capacity_search` needs `min_rate` (total requests/s of the first step)",
        );
    }
    if f.get("max_rate").is_none() {
        cx.error(
            f.pos(),
            path,
            "`capacity_search` needs `max_rate` (highest total requests/s tried)",
        );
    }
    if let (Some(lo), Some(hi)) = (min_rate, max_rate) {
        if hi <= lo {
            cx.error(
                f.get("max_rate").map(|n| n.pos).unwrap_or(f.pos()),
                &f.p("max_rate"),
                format!("`max_rate` ({hi}) must be above `min_rate` ({lo})"),
            );
        }
    }
    let ramp_factor = ranged(
        cx,
        &f,
        "ramp_factor",
        1.1,
        10.0,
        "rate multiplier per ramp step",
    )
    .unwrap_or(2.0);
    let bisect_steps = f.u32_range(cx, "bisect_steps", 0, 20).unwrap_or(3);
    let repeats = f.u32_range(cx, "repeats", 1, 20).unwrap_or(1);
    let step_duration_s = f.duration_s(cx, "step_duration", super::fields::range::MAX_DURATION_S);
    if let Some(d) = step_duration_s {
        if d <= 0.0 {
            cx.error(
                f.get("step_duration").unwrap().pos,
                &f.p("step_duration"),
                "`step_duration` must be above 0",
            );
        }
    }
    let slo_path = f.p("slo");
    let slo = match f.get("slo") {
        None => {
            cx.error(
                f.pos(),
                path,
                "`capacity_search` needs an `slo` mapping (latency_p99_ms, ttft_p99_ms, max_error_rate, min_rate_ratio)",
            );
            None
        }
        Some(sn) if sn.as_map().is_none() => {
            cx.error(sn.pos, &slo_path, "`slo` must be a mapping");
            None
        }
        Some(sn) => {
            cx.check_keys(sn, &slo_path, SLO_KEYS, "`capacity_search.slo`");
            let sf = Fields::new(Some(sn), slo_path.clone());
            let latency_p99_ms = ranged(cx, &sf, "latency_p99_ms", 0.001, 3.6e6, "milliseconds");
            let ttft_p99_ms = ranged(cx, &sf, "ttft_p99_ms", 0.001, 3.6e6, "milliseconds");
            if let (Some(n), false) = (sf.get("ttft_p99_ms"), is_llm) {
                cx.error(
                    n.pos,
                    &sf.p("ttft_p99_ms"),
                    "`ttft_p99_ms` needs an LLM service (time to first token)",
                );
            }
            let max_error_rate = ranged(
                cx,
                &sf,
                "max_error_rate",
                0.0,
                1.0,
                "share of failed requests",
            )
            .unwrap_or(0.01);
            let min_rate_ratio = ranged(
                cx,
                &sf,
                "min_rate_ratio",
                0.0,
                1.0,
                "achieved / target rate",
            )
            .unwrap_or(0.95);
            Some(CapacitySlo {
                latency_p99_ms,
                ttft_p99_ms,
                max_error_rate,
                min_rate_ratio,
            })
        }
    };
    if cx.error_count() > errors {
        return None;
    }
    Some(CapacitySearch {
        spec: SearchSpec {
            min_rate_per_s: min_rate?,
            max_rate_per_s: max_rate?,
            ramp_factor,
            bisect_steps,
            repeats,
        },
        step_duration_s,
        slo: slo?,
    })
}
