//! `explain`: what a recipe will do, service by service (kind, runtime, load, array tasks,
//! node-hours, placement), as the text and JSON the command prints.

use crate::recipe::{self, Runtime, Service};
use serde::Serialize;
use std::collections::BTreeMap;
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
    /// Whether the load generator can drive the target rate, by its cost measured in an
    /// earlier run of this service (absent without a target rate or a measurement).
    #[serde(skip_serializing_if = "Option::is_none")]
    generator: Option<GeneratorFit>,
}

/// The load generator's cost per request measured in an earlier run of a service (the
/// caller reads it from the campaign file: `report::generator::latest_costs`).
#[derive(Debug, Clone, Serialize)]
pub struct MeasuredGenerator {
    pub run_id: String,
    /// Requests one fully used core drove.
    pub requests_per_core_s: f64,
    /// Measured far below the ceiling: the ceiling is at least this.
    pub lower_bound: bool,
}

/// How many cores and client nodes the target rate needs at the measured cost.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorFit {
    pub measured: MeasuredGenerator,
    pub cores_needed: f64,
    /// CPUs each runner gets (`cpus_per_task`, or SLURM's default of 1 under `submit`).
    pub cpus_per_runner: u32,
    /// Runners (client nodes; 1 when the clients run beside the service).
    pub runners: u32,
    /// Client nodes that would give the target rate the cores it needs at `cpus_per_runner`.
    pub client_nodes_needed: u32,
    pub fits: bool,
}

fn generator_fit(s: &Service, m: Option<&MeasuredGenerator>) -> Option<GeneratorFit> {
    let m = m?;
    let rate = s.load.target_rate_total_per_s()?;
    if m.requests_per_core_s <= 0.0 {
        return None;
    }
    let cores_needed = rate / m.requests_per_core_s;
    let cpus = s.cpus_per_task().unwrap_or(1).max(1);
    let runners = s.slurm.client_nodes.max(1);
    Some(GeneratorFit {
        measured: m.clone(),
        cores_needed,
        cpus_per_runner: cpus,
        runners,
        client_nodes_needed: (cores_needed / f64::from(cpus)).ceil().max(1.0) as u32,
        fits: cores_needed <= f64::from(cpus * runners),
    })
}

/// One row per service; `measured`: the load generator's cost per service name, when an
/// earlier run measured it.
pub fn explain_rows(
    l: &recipe::Loaded,
    measured: &BTreeMap<String, MeasuredGenerator>,
) -> Vec<ExplainService> {
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
            generator: generator_fit(s, measured.get(&s.name)),
        })
        .collect()
}

/// The `load generator` lines of `explain`: per service with a measured cost, whether the
/// cores its runners get drive the target rate, and how many client nodes would.
fn generator_lines(out: &mut String, rows: &[ExplainService]) {
    for r in rows {
        let Some(g) = &r.generator else { continue };
        let at_least = if g.measured.lower_bound {
            "at least "
        } else {
            ""
        };
        let _ = write!(
            out,
            "{}: load generator: one core drives {at_least}{:.0} req/s (run {}); {:.0} req/s needs {:.2} core{}",
            r.name,
            g.measured.requests_per_core_s,
            g.measured.run_id,
            r.target_rate_per_s.unwrap_or(0.0),
            g.cores_needed,
            if g.cores_needed == 1.0 { "" } else { "s" },
        );
        let given = format!(
            "{} runner{} × {} CPU{}",
            g.runners,
            if g.runners == 1 { "" } else { "s" },
            g.cpus_per_runner,
            if g.cpus_per_runner == 1 { "" } else { "s" }
        );
        if g.fits {
            let _ = writeln!(out, ": fits ({given})");
        } else {
            let _ = writeln!(
                out,
                ": MORE THAN the {given} the SLURM job gives; use `client_nodes: {}` (at {} CPU{} each) or more `cpus_per_task`{}",
                g.client_nodes_needed,
                g.cpus_per_runner,
                if g.cpus_per_runner == 1 { "" } else { "s" },
                if g.measured.lower_bound {
                    " (the cost was measured far below the ceiling: a short run at the target rate tells exactly)"
                } else {
                    ""
                }
            );
        }
    }
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
    generator_lines(&mut out, rows);
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
