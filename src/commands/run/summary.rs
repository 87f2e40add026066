//! The end-of-run summary, computed from the request rows in the campaign file.
//!
//! Definitions (measured requests only: `warmup = 0`):
//! - `requests`: rows; `errors`: rows with `ok = 0`;
//! - `window_s`: last `done_ns` − first `scheduled_ns`;
//! - `achieved_rps` = requests / window_s; `ops_per_s` = successful requests / window_s;
//! - `mb_per_s` = (bytes_sent + bytes_received of successful requests) / 10^6 / window_s;
//! - latency quantiles (nearest rank) of successful requests, corrected = done − scheduled,
//!   service = done − sent, in milliseconds.

use rusqlite::{params, Connection};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub run_id: String,
    pub service: String,
    pub service_kind: String,
    pub status: String,
    pub stop_reason: Option<String>,
    pub failure_stage: Option<String>,
    pub failure_message: Option<String>,
    pub sweep: Option<String>,
    pub requests: u64,
    pub errors: u64,
    pub errors_by_class: BTreeMap<String, u64>,
    pub warmup_requests: u64,
    pub target_rps: Option<f64>,
    pub achieved_rps: f64,
    pub ops_per_s: f64,
    pub mb_per_s: f64,
    pub window_s: f64,
    /// Corrected for coordinated omission (from the scheduled start).
    pub latency: Option<LatencySummary>,
    /// From the send time.
    pub service_latency: Option<LatencySummary>,
    pub generator_saturated: bool,
}

fn quantiles(mut v: Vec<i64>) -> Option<LatencySummary> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let n = v.len();
    let at = |p: f64| {
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        v[rank - 1] as f64 / 1e6
    };
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64 / 1e6;
    Some(LatencySummary {
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        max_ms: v[n - 1] as f64 / 1e6,
        mean_ms: mean,
    })
}

/// Summarize one run from its rows.
pub fn summarize_run(conn: &Connection, run_id: &str) -> rusqlite::Result<RunSummary> {
    let (service, kind, status, stop_reason, stage, message, target, sp, sv) = conn.query_row(
        "SELECT service, service_kind, status, stop_reason, failure_stage, failure_message,
         target_rate, sweep_param, sweep_value FROM runs WHERE run_id = ?1",
        [run_id],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
                r.get::<_, Option<f64>>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        },
    )?;
    let mut st = conn.prepare(
        "SELECT scheduled_ns, sent_ns, done_ns, ok, error_class, bytes_sent + bytes_received
         FROM requests WHERE run_id = ?1 AND warmup = 0",
    )?;
    let mut rows = st.query(params![run_id])?;
    let (mut requests, mut errors, mut bytes) = (0u64, 0u64, 0i64);
    let mut by_class = BTreeMap::new();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    let mut corrected = Vec::new();
    let mut service_lat = Vec::new();
    while let Some(r) = rows.next()? {
        let sched: i64 = r.get(0)?;
        let sent: i64 = r.get(1)?;
        let done: i64 = r.get(2)?;
        let ok: bool = r.get(3)?;
        requests += 1;
        first = first.min(sched);
        last = last.max(done);
        if ok {
            corrected.push(done - sched);
            service_lat.push(done - sent);
            bytes += r.get::<_, i64>(5)?;
        } else {
            errors += 1;
            let c: Option<String> = r.get(4)?;
            *by_class
                .entry(c.unwrap_or_else(|| "other".into()))
                .or_insert(0) += 1;
        }
    }
    let warmup_requests: u64 = conn.query_row(
        "SELECT count(*) FROM requests WHERE run_id = ?1 AND warmup = 1",
        [run_id],
        |r| r.get::<_, i64>(0),
    )? as u64;
    let saturated: Option<f64> = conn
        .query_row(
            "SELECT max(value) FROM run_metrics WHERE run_id = ?1 AND name = 'generator_saturated'",
            [run_id],
            |r| r.get(0),
        )
        .unwrap_or(None);
    let window_s = if requests > 0 {
        ((last - first) as f64 / 1e9).max(1e-9)
    } else {
        0.0
    };
    let per_s = |x: f64| if window_s > 0.0 { x / window_s } else { 0.0 };
    let ok = requests - errors;
    Ok(RunSummary {
        run_id: run_id.to_string(),
        service,
        service_kind: kind,
        status,
        stop_reason,
        failure_stage: stage,
        failure_message: message,
        sweep: sp.zip(sv).map(|(p, v)| format!("{p}={v}")),
        requests,
        errors,
        errors_by_class: by_class,
        warmup_requests,
        target_rps: target,
        achieved_rps: per_s(requests as f64),
        ops_per_s: per_s(ok as f64),
        mb_per_s: per_s(bytes as f64 / 1e6),
        window_s,
        latency: quantiles(corrected),
        service_latency: quantiles(service_lat),
        generator_saturated: saturated.unwrap_or(0.0) > 0.0,
    })
}

/// The human table.
pub fn render_table(runs: &[RunSummary]) -> String {
    let mut out = String::new();
    let header = [
        "service",
        "status",
        "requests",
        "errors",
        "target/s",
        "achieved/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "ops/s",
        "MB/s",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    let f = |x: f64| format!("{x:.3}");
    for r in runs {
        let name = match &r.sweep {
            Some(s) => format!("{} [{s}]", r.service),
            None => r.service.clone(),
        };
        let lat = |g: fn(&LatencySummary) -> f64| {
            r.latency
                .as_ref()
                .map(|l| f(g(l)))
                .unwrap_or_else(|| "-".into())
        };
        rows.push(vec![
            name,
            r.status.clone(),
            r.requests.to_string(),
            r.errors.to_string(),
            r.target_rps
                .map(|t| format!("{t:.1}"))
                .unwrap_or_else(|| "max".into()),
            format!("{:.1}", r.achieved_rps),
            lat(|l| l.p50_ms),
            lat(|l| l.p90_ms),
            lat(|l| l.p99_ms),
            lat(|l| l.p999_ms),
            lat(|l| l.max_ms),
            format!("{:.1}", r.ops_per_s),
            format!("{:.3}", r.mb_per_s),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for (k, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < 2 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if k == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
            out.push('\n');
        }
    }
    for r in runs {
        if !r.errors_by_class.is_empty() {
            let e: Vec<String> = r
                .errors_by_class
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            out.push_str(&format!("{}: errors: {}\n", r.service, e.join(", ")));
        }
        if let Some(m) = &r.failure_message {
            out.push_str(&format!(
                "{}: FAILED ({}): {m}\n",
                r.service,
                r.failure_stage.as_deref().unwrap_or("?")
            ));
        }
        if r.status == "partial" {
            out.push_str(&format!(
                "{}: PARTIAL run (stopped by {}); figures cover what ran\n",
                r.service,
                r.stop_reason.as_deref().unwrap_or("?")
            ));
        }
        if r.generator_saturated {
            out.push_str(&format!(
                "{}: WARNING generator saturated: the runner could not keep the schedule; the rate and latency reflect the load generator, not the service\n",
                r.service
            ));
        }
    }
    out.push_str("latency: from the scheduled start (corrected for coordinated omission), successful measured requests; warmup excluded\n");
    out
}
