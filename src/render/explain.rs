//! `explain`: what a recipe will do, service by service (kind, runtime, load, array tasks,
//! node-hours, placement), as the text and JSON the command prints.

use crate::recipe::{self, Runtime, Service};
use serde::Serialize;
use std::fmt::Write as _;

/// Node-hours a service's job may hold: nodes × (array tasks) × SLURM time limit (or the
/// service's warmup + duration plus readiness budget when no limit is set).
pub fn node_hours(s: &Service) -> f64 {
    let tasks = s.sweep.as_ref().map_or(1, |w| w.values.len()) as f64;
    let secs = s
        .slurm
        .time_limit_s
        .map(|t| t as f64)
        .unwrap_or(s.load.warmup_s + s.load.duration_s + f64::from(s.readiness.timeout_s));
    f64::from(s.slurm.nodes) * tasks * secs / 3600.0
}

#[derive(Serialize)]
pub struct ExplainService {
    name: String,
    kind: String,
    runtime: Runtime,
    arrival: String,
    clients: u32,
    target_rate_per_s: Option<f64>,
    duration_s: f64,
    warmup_s: f64,
    array_tasks: usize,
    node_hours: f64,
    gpu: bool,
    /// Why this binary cannot run the service (select the others with --service).
    #[serde(skip_serializing_if = "Option::is_none")]
    cannot_run: Option<String>,
    /// Nodes of the job: the service's, plus one per client node.
    nodes: u32,
    /// Nodes that run the clients (0: beside the service, in the batch step).
    client_nodes: u32,
}

pub fn explain_rows(l: &recipe::Loaded) -> Vec<ExplainService> {
    l.plan
        .services
        .iter()
        .map(|s| ExplainService {
            name: s.name.clone(),
            kind: s.kind.to_string(),
            runtime: s.runtime,
            arrival: format!("{:?}", s.load.arrival).to_lowercase(),
            clients: s.load.clients,
            target_rate_per_s: s.load.target_rate_total_per_s(),
            duration_s: s.load.duration_s,
            warmup_s: s.load.warmup_s,
            array_tasks: s.sweep.as_ref().map_or(1, |w| w.values.len()),
            node_hours: node_hours(s),
            gpu: s.wants_gpu(),
            cannot_run: l.cannot_run_reason(&s.name).map(|d| d.message.clone()),
            nodes: s.slurm.nodes,
            client_nodes: s.slurm.client_nodes,
        })
        .collect()
}

/// The JSON of `explain --json`.
pub fn explain_json(l: &recipe::Loaded, rows: &[ExplainService]) -> serde_json::Value {
    let plan = &l.plan;
    let total: f64 = rows.iter().map(|r| r.node_hours).sum();
    serde_json::json!({
        "benchmark": plan.benchmark,
        "metrics_db": plan.global.metrics_db,
        "services": rows,
        "total_node_hours": total,
    })
}

/// The text of `explain`.
pub fn explain_text(l: &recipe::Loaded, rows: &[ExplainService]) -> String {
    let plan = &l.plan;
    let total: f64 = rows.iter().map(|r| r.node_hours).sum();
    let mut out = String::new();
    let _ = writeln!(out, "{}", plan.benchmark.name);
    if !plan.benchmark.description.is_empty() {
        let _ = writeln!(out, "  {}", plan.benchmark.description);
    }
    let _ = writeln!(
        out,
        "  campaign file: {}   reports: {}   logs: {}",
        plan.global.metrics_db.display(),
        plan.global.reports_dir.display(),
        plan.global.logs_dir.display()
    );
    out.push('\n');
    let _ = writeln!(
        out,
        "{:<24} {:<12} {:<10} {:<8} {:>7} {:>12} {:>9} {:>6} {:>10}",
        "SERVICE",
        "TYPE",
        "RUNTIME",
        "ARRIVAL",
        "CLIENTS",
        "TARGET/s",
        "DURATION",
        "TASKS",
        "NODE-H"
    );
    for r in rows {
        let rate = r
            .target_rate_per_s
            .map(|v| format!("{v:.1}"))
            .unwrap_or_else(|| "unthrottled".into());
        let _ = writeln!(
            out,
            "{:<24} {:<12} {:<10} {:<8} {:>7} {:>12} {:>8.0}s {:>6} {:>10.2}{}",
            r.name,
            r.kind,
            format!("{:?}", r.runtime).to_lowercase(),
            r.arrival,
            r.clients,
            rate,
            r.duration_s,
            r.array_tasks,
            r.node_hours,
            if r.gpu { "  (GPU)" } else { "" }
        );
        if let Some(why) = &r.cannot_run {
            let _ = writeln!(out, "{:<24} CANNOT RUN with this binary: {why}", "");
        }
    }
    let runnable = l.runnable();
    if runnable.len() < rows.len() {
        out.push('\n');
        let _ = writeln!(out,
            "{} of {} services cannot run with this binary; the others run with --service NAME ({})",
            rows.len() - runnable.len(),
            rows.len(),
            runnable.join(", ")
        );
    }
    out.push('\n');
    // Placement: the service takes the job's first node; `client_nodes: N`, or the seed's
    // `nodes: N` without it, puts the clients on the other nodes.
    for r in rows.iter().filter(|r| r.client_nodes > 0) {
        let _ = writeln!(
            out,
            "{}: service on 1 node, clients on the other {} (nodes: {})",
            r.name, r.client_nodes, r.nodes
        );
    }
    let _ = writeln!(
        out,
        "{} service{}; at most {total:.2} node-hours if every job runs to its time limit.",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    );
    out
}
