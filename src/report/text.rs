//! CSV and Prometheus text exposition renderers (from [`super::table`] rows).

use super::document::ReportDocument;
use super::integrity;
use super::table::{rows, value_names, Row, LABELS, PROM_LABELS};
use std::fmt::Write;

/// Provenance as `# key: value` comment lines (CSV and Prometheus).
fn provenance_comments(d: &ReportDocument, format: &str) -> String {
    let p = &d.provenance;
    let a = &d.analysis;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# factorybench report ({format}), schema_version {}",
        d.schema_version
    );
    let _ = writeln!(s, "# {}: {}", integrity::MARKER, integrity::PLACEHOLDER);
    let _ = writeln!(s, "# tool_version: {}", p.tool_version);
    let _ = writeln!(
        s,
        "# git_commit: {}",
        p.git_commit.as_deref().unwrap_or("unknown")
    );
    let _ = writeln!(s, "# generated_at: {}", p.generated_at);
    let _ = writeln!(s, "# generated_on_host: {}", p.generated_on_host);
    let _ = writeln!(s, "# campaign: {}", one_line(&a.campaign));
    let _ = writeln!(s, "# campaign_path: {}", one_line(&p.campaign_path));
    if let Some(r) = &p.campaign_recipe {
        let _ = writeln!(
            s,
            "# campaign_recipe: {} sha256 {}",
            one_line(&r.path),
            r.sha256
        );
    }
    let _ = writeln!(
        s,
        "# started_at: {}  ended_at: {}",
        p.started_at.as_deref().unwrap_or("-"),
        p.ended_at.as_deref().unwrap_or("-")
    );
    let _ = writeln!(s, "# slurm_job_ids: {}", p.slurm_job_ids.join(" "));
    let _ = writeln!(s, "# hosts: {}", one_line(&p.hosts.join(" ")));
    let _ = writeln!(s, "# valid: {}  partial: {}", a.valid, a.partial);
    s.push_str(&super::provenance::comment_lines(&a.runs));
    for r in &a.runs {
        let _ = writeln!(
            s,
            "# run {} service {} recipe_sha256 {}{}",
            r.run_id,
            r.service,
            r.provenance.recipe_sha256,
            if r.valid {
                String::new()
            } else {
                format!(
                    " INVALID: {}",
                    one_line(
                        &r.invalid_reasons
                            .iter()
                            .map(|x| x.message.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                )
            }
        );
        for g in &r.gates {
            let (m, l) = g.describe();
            let _ = writeln!(
                s,
                "# gate run {} {}: measured {m}, limit {l}: {}",
                r.run_id,
                g.gate,
                if g.passed { "pass" } else { "FAIL" }
            );
        }
    }
    s
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// A number as written in CSV and Prometheus: Rust's shortest round-trip decimal.
pub fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "NaN".into()
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV: provenance comment lines, a header, one row per service/run/operation.
pub fn to_csv(d: &ReportDocument) -> String {
    let mut s = provenance_comments(d, "csv");
    let names = value_names();
    let header: Vec<String> = LABELS
        .iter()
        .map(|l| l.to_string())
        .chain(names.iter().cloned())
        .chain(["run_metrics".to_string(), "invalid_reasons".to_string()])
        .collect();
    s.push_str(&header.join(","));
    s.push('\n');
    for row in rows(&d.analysis) {
        let mut cells: Vec<String> = row.labels.iter().map(|(_, v)| csv_field(v)).collect();
        cells.extend(
            row.values
                .iter()
                .map(|(_, v)| v.map(num).unwrap_or_default()),
        );
        let metrics: Vec<String> = row
            .run_metrics
            .iter()
            .map(|(n, v, u)| format!("{n}={} {u}", num(*v)))
            .collect();
        cells.push(csv_field(&metrics.join("; ")));
        cells.push(csv_field(&row.invalid_reasons));
        s.push_str(&cells.join(","));
        s.push('\n');
    }
    integrity::seal(s)
}

fn prom_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn prom_labels(row: &Row) -> String {
    PROM_LABELS
        .iter()
        .map(|k| format!("{k}=\"{}\"", prom_escape(row.label(k))))
        .collect::<Vec<_>>()
        .join(",")
}

/// Prometheus text exposition format 0.0.4: one gauge family per figure, in base units
/// (see [`prom_name`]).
pub fn to_prom(d: &ReportDocument) -> String {
    let mut s = provenance_comments(d, "prometheus");
    let p = &d.provenance;
    s.push_str("# HELP factorybench_report_info Provenance of this report.\n");
    s.push_str("# TYPE factorybench_report_info gauge\n");
    let _ = writeln!(
        s,
        "factorybench_report_info{{tool_version=\"{}\",git_commit=\"{}\",campaign=\"{}\",schema_version=\"{}\",valid=\"{}\",partial=\"{}\"}} 1",
        prom_escape(&p.tool_version),
        prom_escape(p.git_commit.as_deref().unwrap_or("")),
        prom_escape(&d.analysis.campaign),
        d.schema_version,
        d.analysis.valid,
        d.analysis.partial
    );
    let rows = rows(&d.analysis);
    let _ = writeln!(
        s,
        "# HELP factorybench_valid 1 when the run passed every validity gate."
    );
    let _ = writeln!(s, "# TYPE factorybench_valid gauge");
    for row in &rows {
        let _ = writeln!(
            s,
            "factorybench_valid{{{}}} {}",
            prom_labels(row),
            if row.label("valid") == "true" { 1 } else { 0 }
        );
    }
    let with_metrics: Vec<&Row> = rows.iter().filter(|r| !r.run_metrics.is_empty()).collect();
    if !with_metrics.is_empty() {
        s.push_str("# HELP factorybench_run_metric Figures measured outside the timed region (recall_at_k, server counters).\n");
        s.push_str("# TYPE factorybench_run_metric gauge\n");
        for row in with_metrics {
            for (n, v, u) in &row.run_metrics {
                let _ = writeln!(
                    s,
                    "factorybench_run_metric{{{},name=\"{}\",unit=\"{}\"}} {}",
                    prom_labels(row),
                    prom_escape(n),
                    prom_escape(u),
                    num(*v)
                );
            }
        }
    }
    for (i, col) in value_names().iter().enumerate() {
        let (name, divisor) = prom_name(col);
        let mut body = String::new();
        for row in &rows {
            if let Some(v) = row.values[i].1 {
                let _ = writeln!(
                    body,
                    "factorybench_{name}{{{}}} {}",
                    prom_labels(row),
                    num(v / divisor)
                );
            }
        }
        if body.is_empty() {
            continue;
        }
        let _ = writeln!(s, "# HELP factorybench_{name} {}", help(col));
        let _ = writeln!(s, "# TYPE factorybench_{name} gauge");
        s.push_str(&body);
    }
    integrity::seal(s)
}

/// Prometheus name of a table column, in base units (seconds, bytes), and the divisor that
/// converts the column's value: `latency_corrected_p99_ms` → `latency_corrected_p99_seconds`, /1000.
pub fn prom_name(col: &str) -> (String, f64) {
    if let Some(stem) = col.strip_suffix("_mb_per_s") {
        return (format!("{stem}_bytes_per_second"), 1e-6);
    }
    if let Some(stem) = col.strip_suffix("_per_s") {
        return (format!("{stem}_per_second"), 1.0);
    }
    if let Some(stem) = col.strip_suffix("_rps") {
        return (format!("{stem}_requests_per_second"), 1.0);
    }
    if let Some(stem) = col.strip_suffix("_ms") {
        return (format!("{stem}_seconds"), 1000.0);
    }
    if let Some(stem) = col.strip_suffix("_s") {
        return (format!("{stem}_seconds"), 1.0);
    }
    if let Some(stem) = col.strip_suffix("_j") {
        return (format!("{stem}_joules"), 1.0);
    }
    if col == "error_rate" {
        return ("error_ratio".into(), 1.0);
    }
    (col.to_string(), 1.0)
}

fn help(name: &str) -> String {
    let what = if name.starts_with("latency_corrected") {
        "Latency done - scheduled of successful requests (coordinated omission corrected)"
    } else if name.starts_with("latency_uncorrected") {
        "Latency done - sent of successful requests"
    } else if name.starts_with("ttft_from_scheduled") {
        "Time to first token from the scheduled start"
    } else if name.starts_with("ttft") {
        "Time to first token from send (vLLM TTFT)"
    } else if name.starts_with("itl") {
        "Inter-token latency (every gap)"
    } else if name.starts_with("tpot") {
        "Time per output token = (E2EL - TTFT) / (output tokens - 1)"
    } else if name.starts_with("e2el") {
        "End-to-end request latency (done - sent)"
    } else {
        "factorybench figure"
    };
    format!("{what} (report column {name}, in base units), computed from the recorded requests.")
}

/// The concise human summary `report` prints on a terminal: verdict, one line per service
/// measurement, every validity gate of each run, where the full formats are.
pub fn to_summary(d: &ReportDocument) -> String {
    let a = &d.analysis;
    let mut s = String::new();
    let verdict = if a.partial {
        "PARTIAL"
    } else if a.valid {
        "VALID"
    } else {
        "INVALID"
    };
    let _ = writeln!(
        s,
        "{} — {verdict} ({} run{}, {} → {})",
        a.campaign,
        a.runs.len(),
        if a.runs.len() == 1 { "" } else { "s" },
        a.started_at.as_deref().unwrap_or("-"),
        a.ended_at.as_deref().unwrap_or("-"),
    );
    let _ = writeln!(s, "source: {}", a.sources.join(", "));
    let _ = writeln!(
        s,
        "\n{:<28} {:<8} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}  measured from",
        "service", "valid", "requests", "errors", "ops/s", "MB/s", "p50 ms", "p99 ms", "max ms"
    );
    for m in &a.services {
        let name = match (&m.sweep_param, &m.sweep_value) {
            (Some(p), Some(v)) => format!("{} [{p}={v}]", m.service),
            _ => m.service.clone(),
        };
        let lat = |g: fn(&super::model::Summary) -> f64| {
            m.total
                .latency_corrected_ms
                .as_ref()
                .map(|l| format!("{:.3}", g(l)))
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(
            s,
            "{:<28} {:<8} {:>9} {:>7} {:>10.1} {:>9.3} {:>9} {:>9} {:>9}  {}",
            name,
            if m.partial {
                "PARTIAL"
            } else if m.valid {
                "yes"
            } else {
                "INVALID"
            },
            m.total.requests,
            m.total.errors,
            m.total.throughput_ops_per_s,
            m.total.throughput_mb_per_s,
            lat(|l| l.p50),
            lat(|l| l.p99),
            lat(|l| l.max),
            m.measured_from,
        );
    }
    s += &service_node_lines(&a.services);
    for r in &a.runs {
        let _ = writeln!(s, "\nrun {} ({}, {}):", r.run_id, r.service, r.started_at);
        for g in &r.gates {
            let (m, l) = g.describe();
            let _ = writeln!(
                s,
                "  {:<4} {:<52} measured {m:<12} limit {l}",
                if g.passed { "ok" } else { "FAIL" },
                g.gate,
            );
        }
        if let Some(c) = &r.generator_cost {
            let _ = writeln!(s, "  load generator: {}", c.describe());
        }
    }
    let _ = writeln!(
        s,
        "\nlatency: corrected for coordinated omission (from the scheduled start), successful measured requests"
    );
    let _ = writeln!(
        s,
        "full report: factorybench report {} --format html --out report.html  (JSON: --format json)",
        crate::render::shell_quote(&d.provenance.campaign_path)
    );
    s
}

/// One line per service aggregate whose service node's GPUs were sampled (a multi-node job:
/// the runners on the client nodes sample no GPU): the node, its GPUs and their energy over the
/// aggregate's measured window, per successful request and per output token of all client
/// nodes together. Empty when no aggregate has such samples.
pub fn service_node_lines(services: &[super::model::ServiceAggregate]) -> String {
    let mut s = String::new();
    for m in services {
        let Some(sn) = &m.service_node else { continue };
        if s.is_empty() {
            s +=
                "\nGPUs sampled on the service node (NVML), over each service's measured window:\n";
        }
        let name = match (&m.sweep_param, &m.sweep_value) {
            (Some(p), Some(v)) => format!("{} [{p}={v}]", m.service),
            _ => m.service.clone(),
        };
        let energy = match &sn.energy {
            None => "no energy reading in the window".to_string(),
            Some(e) => {
                use super::svg::fmt_num;
                let mut t = format!("{} J", fmt_num(e.total_energy_j));
                if let Some(v) = e.energy_per_request_j {
                    let _ = write!(t, ", {} J per request", fmt_num(v));
                }
                if let Some(v) = e.energy_per_output_token_j {
                    let _ = write!(t, ", {} J per output token", fmt_num(v));
                }
                t
            }
        };
        let _ = writeln!(
            s,
            "  {name}: node {}, {} GPU{}: {energy}",
            sn.node,
            sn.gpus,
            if sn.gpus == 1 { "" } else { "s" }
        );
    }
    s
}
