//! Capacity searches in reports: per search, its steps (every one a recorded run), the
//! answer with its cross-run interval, and the throughput–latency curve with the knee and the
//! SLO lines.

use super::model::rfc3339;
pub use super::model::{CapacitySearchReport, CapacityStep, CrossRun};
use super::svg::{esc, fmt_num, marked_line_chart, Axis, Mark, Series};
use crate::capacity::{mean_interval, Phase};
use crate::store::read::{self as db, Connection};
use std::fmt::Write;

/// The capacity searches recorded in one campaign file.
pub fn read_searches(
    conn: &Connection,
) -> Result<Vec<CapacitySearchReport>, crate::store::DbError> {
    let mut out = Vec::new();
    for (s, steps) in db::capacity_searches(conn)? {
        let steps: Vec<CapacityStep> = steps
            .into_iter()
            .map(|x| CapacityStep {
                step: x.step,
                run_id: x.run_id,
                phase: x.phase.as_str().to_string(),
                target_rate_per_s: x.target_rate,
                achieved_rate_per_s: x.achieved_rate,
                latency_p99_ms: x.latency_p99_ms,
                ttft_p99_ms: x.ttft_p99_ms,
                error_rate: x.error_rate,
                passed: x.passed,
                reason: x.reason,
            })
            .collect();
        let at_knee: Vec<&CapacityStep> = match s.sustainable_rate {
            Some(r) => steps
                .iter()
                .filter(|x| (x.target_rate_per_s - r).abs() < 1e-9)
                .collect(),
            None => Vec::new(),
        };
        let cross = |vals: Vec<f64>| {
            mean_interval(&vals).map(|(mean, hw)| CrossRun {
                mean,
                ci95_half_width: hw,
                runs: vals.len(),
            })
        };
        out.push(CapacitySearchReport {
            search_id: s.search_id,
            service: s.service,
            spec: serde_json::from_str(&s.spec_json).unwrap_or(serde_json::Value::Null),
            outcome: s.outcome.unwrap_or_else(|| "running".into()),
            sustainable_rate_per_s: s.sustainable_rate,
            first_failing_rate_per_s: s.first_failing_rate,
            throughput_at_knee_per_s: cross(
                at_knee
                    .iter()
                    .filter_map(|x| x.achieved_rate_per_s)
                    .collect(),
            ),
            latency_p99_at_knee_ms: cross(
                at_knee.iter().filter_map(|x| x.latency_p99_ms).collect(),
            ),
            knee_repeats_all_passed: !at_knee.is_empty() && at_knee.iter().all(|x| x.passed),
            started_at: rfc3339(s.started_ns),
            elapsed_s: s.ended_ns.map(|e| (e - s.started_ns) as f64 / 1e9),
            steps,
        });
    }
    Ok(out)
}

fn interval(c: &Option<CrossRun>, unit: &str) -> String {
    match c {
        None => "–".into(),
        Some(c) => match c.ci95_half_width {
            Some(h) => format!(
                "{} ± {} {unit} (95 %, {} runs)",
                fmt_num(c.mean),
                fmt_num(h),
                c.runs
            ),
            None => format!("{} {unit} (1 run)", fmt_num(c.mean)),
        },
    }
}

/// A step's verdict in words: holds, fails (the service), or not judged (the generator).
fn step_verdict(x: &CapacityStep) -> String {
    let reason = x.reason.as_deref().unwrap_or("?");
    if x.passed {
        "holds SLOs".to_string()
    } else if let Some(why) = reason.strip_prefix(crate::runner::capacity::NOT_JUDGED) {
        format!("NOT JUDGED (load generator side): {why}")
    } else {
        format!("FAILS: {reason}")
    }
}

impl CapacitySearchReport {
    /// The rate the load generator could not offer, when that ended the search.
    pub fn limited_at_rate_per_s(&self) -> Option<f64> {
        if self.outcome != "generator_limited" {
            return None;
        }
        self.steps
            .iter()
            .rev()
            .find(|x| {
                x.reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with(crate::runner::capacity::NOT_JUDGED))
            })
            .map(|x| x.target_rate_per_s)
    }
}

/// With repeats at the knee and a p99 SLO: whether the repeats' 95 % interval of the p99
/// stays under the SLO (the data supports the knee) or reaches over it (inconclusive).
fn knee_support(s: &CapacitySearchReport) -> Option<String> {
    let slo = s.spec.get("slo")?.get("latency_p99_ms")?.as_f64()?;
    let c = s.latency_p99_at_knee_ms.as_ref()?;
    let h = c.ci95_half_width?;
    Some(if c.mean + h <= slo {
        format!(
            "knee supported: the p99 of the {} runs there is {} ± {} ms, all of its 95 % interval under the SLO {} ms",
            c.runs,
            fmt_num(c.mean),
            fmt_num(h),
            fmt_num(slo)
        )
    } else {
        format!(
            "knee inconclusive: the p99 of the {} runs there is {} ± {} ms, and its 95 % interval reaches over the SLO {} ms: more repeats or a lower rate would tell",
            c.runs,
            fmt_num(c.mean),
            fmt_num(h),
            fmt_num(slo)
        )
    })
}

/// A plain-text summary of one search.
pub fn to_text(s: &CapacitySearchReport) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "capacity search {} of {}: {}",
        s.search_id, s.service, s.outcome
    );
    let _ = writeln!(
        t,
        "{:>4}  {:<8} {:>10} {:>10} {:>10} {:>10} {:>7}  verdict",
        "step", "phase", "target/s", "achieved/s", "p99 ms", "TTFT p99", "errors"
    );
    for x in &s.steps {
        let o = |v: Option<f64>| v.map(fmt_num).unwrap_or_else(|| "–".into());
        let _ = writeln!(
            t,
            "{:>4}  {:<8} {:>10} {:>10} {:>10} {:>10} {:>7}  {}",
            x.step,
            x.phase,
            fmt_num(x.target_rate_per_s),
            o(x.achieved_rate_per_s),
            o(x.latency_p99_ms),
            o(x.ttft_p99_ms),
            x.error_rate
                .map(|e| format!("{}%", fmt_num(e * 100.0)))
                .unwrap_or_else(|| "–".into()),
            step_verdict(x)
        );
    }
    if let Some(at) = s.limited_at_rate_per_s() {
        let held = match s.sustainable_rate_per_s {
            Some(r) => format!("the service held its SLOs up to {} req/s", fmt_num(r)),
            None => {
                "no step held its SLOs before it (lower min_rate to find where the service does)"
                    .into()
            }
        };
        let _ = writeln!(
            t,
            "limited by the load generator at {} req/s: no knee. {held}{}; the generator (or its connections, after raising them) could not offer more, so the service's limit is not measured: add client_nodes",
            fmt_num(at),
            s.first_failing_rate_per_s
                .map(|f| format!(" (it failed its SLOs at {} req/s)", fmt_num(f)))
                .unwrap_or_default(),
        );
    } else if let Some(r) = s.sustainable_rate_per_s {
        let _ = writeln!(
            t,
            "sustainable rate: {} req/s (first failing: {}); throughput there {}; p99 there {}",
            fmt_num(r),
            s.first_failing_rate_per_s
                .map(|f| format!("{} req/s", fmt_num(f)))
                .unwrap_or_else(|| "none up to max_rate".into()),
            interval(&s.throughput_at_knee_per_s, "req/s"),
            interval(&s.latency_p99_at_knee_ms, "ms"),
        );
    } else {
        let _ = writeln!(t, "no sustainable rate: the lowest step broke the SLOs");
    }
    if let Some(line) = knee_support(s) {
        let _ = writeln!(t, "{line}");
    }
    if let Some(e) = s.elapsed_s {
        let _ = writeln!(
            t,
            "search took {} s over {} runs",
            fmt_num(e),
            s.steps.len()
        );
    }
    t
}

/// The HTML section of every search: answer, steps, and the throughput–latency curve.
pub fn html_section(searches: &[CapacitySearchReport]) -> String {
    if searches.is_empty() {
        return String::new();
    }
    let mut h = String::from("<h2>Capacity searches</h2>");
    for s in searches {
        let _ = write!(
            h,
            "<section class=\"capacity\"><h3>{} <small>search {} · {}</small></h3>",
            esc(&s.service),
            esc(&s.search_id),
            esc(&s.outcome)
        );
        let _ = write!(
            h,
            "<table class=\"kv\"><tr><th>sustainable rate</th><td>{}</td></tr><tr><th>first failing rate</th><td>{}</td></tr><tr><th>throughput at the knee</th><td>{}</td></tr><tr><th>p99 latency at the knee</th><td>{}</td></tr><tr><th>search time</th><td>{}</td></tr></table>",
            s.sustainable_rate_per_s
                .map(|r| format!("{} req/s", fmt_num(r)))
                .unwrap_or_else(|| "none".into()),
            s.first_failing_rate_per_s
                .map(|r| format!("{} req/s", fmt_num(r)))
                .unwrap_or_else(|| "–".into()),
            esc(&interval(&s.throughput_at_knee_per_s, "req/s")),
            esc(&interval(&s.latency_p99_at_knee_ms, "ms")),
            s.elapsed_s
                .map(|e| format!("{} s, {} runs", fmt_num(e), s.steps.len()))
                .unwrap_or_else(|| "–".into()),
        );
        h.push_str(&curve(s));
        h.push_str("<table><tr><th>step</th><th>phase</th><th>target/s</th><th>achieved/s</th><th>p99 ms</th><th>TTFT p99 ms</th><th>errors</th><th>verdict</th><th>run</th></tr>");
        for x in &s.steps {
            let o = |v: Option<f64>| v.map(fmt_num).unwrap_or_else(|| "–".into());
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"#run-{}\"><code>{}</code></a></td></tr>",
                x.step,
                esc(&x.phase),
                fmt_num(x.target_rate_per_s),
                o(x.achieved_rate_per_s),
                o(x.latency_p99_ms),
                o(x.ttft_p99_ms),
                x.error_rate
                    .map(|e| format!("{}%", fmt_num(e * 100.0)))
                    .unwrap_or_else(|| "–".into()),
                esc(&step_verdict(x)),
                esc(&x.run_id),
                esc(&x.run_id),
            );
        }
        h.push_str("</table></section>");
    }
    h
}

/// p99 latency (and TTFT) against achieved throughput, with the knee and the SLO lines.
fn curve(s: &CapacitySearchReport) -> String {
    let mut held: Vec<(f64, f64)> = Vec::new();
    let mut broke: Vec<(f64, f64)> = Vec::new();
    let mut ttft: Vec<(f64, f64)> = Vec::new();
    for x in &s.steps {
        let Some(a) = x.achieved_rate_per_s else {
            continue;
        };
        if let Some(l) = x.latency_p99_ms {
            let not_judged = x
                .reason
                .as_deref()
                .is_some_and(|r| r.starts_with(crate::runner::capacity::NOT_JUDGED));
            if x.passed {
                held.push((a, l));
            } else if !not_judged {
                broke.push((a, l));
            }
        }
        if let Some(t) = x.ttft_p99_ms {
            ttft.push((a, t));
        }
    }
    for v in [&mut held, &mut broke, &mut ttft] {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let mut series = vec![
        Series {
            name: "p99 latency, steps holding the SLOs".into(),
            points: held,
        },
        Series {
            name: "p99 latency, steps breaking them".into(),
            points: broke,
        },
    ];
    if !ttft.is_empty() {
        series.push(Series {
            name: "p99 TTFT".into(),
            points: ttft,
        });
    }
    let mut v = Vec::new();
    if let Some(k) = s
        .throughput_at_knee_per_s
        .as_ref()
        .map(|c| c.mean)
        .or(s.sustainable_rate_per_s)
    {
        v.push(Mark {
            at: k,
            label: format!("knee {} req/s", fmt_num(k)),
        });
    }
    let slo = &s.spec["slo"];
    let mut hm = Vec::new();
    if let Some(l) = slo["latency_p99_ms"].as_f64() {
        hm.push(Mark {
            at: l,
            label: format!("SLO p99 {} ms", fmt_num(l)),
        });
    }
    if let Some(l) = slo["ttft_p99_ms"].as_f64() {
        hm.push(Mark {
            at: l,
            label: format!("SLO TTFT p99 {} ms", fmt_num(l)),
        });
    }
    marked_line_chart(
        &format!("{}: throughput vs p99 latency", s.service),
        Axis::lin("achieved throughput, req/s"),
        Axis::lin("ms"),
        &series,
        &v,
        &hm,
    )
}

/// Steps of one phase (for tests and summaries).
pub fn steps_of(s: &CapacitySearchReport, p: Phase) -> Vec<&CapacityStep> {
    s.steps.iter().filter(|x| x.phase == p.as_str()).collect()
}
