//! `validate` and `explain`.

use crate::exit::{self, Failure};
use crate::recipe::{self, LoadError, Runtime, Service};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  factorybench validate recipes/comprehensive.yml\n  factorybench validate recipes/comprehensive.yml --service chromadb-test\n  factorybench validate --json my.yml | jq '.diagnostics[].message'"
)]
pub struct ValidateArgs {
    /// The recipe file.
    pub recipe: PathBuf,
    /// Validate for running this service only: another service this binary cannot run does
    /// not make it invalid.
    #[arg(long)]
    pub service: Option<String>,
    /// Print the result (valid, diagnostics) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  factorybench explain recipes/comprehensive.yml")]
pub struct ExplainArgs {
    /// The recipe file.
    pub recipe: PathBuf,
    /// Print the plan summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ValidateJson<'a> {
    file: String,
    valid: bool,
    services: usize,
    diagnostics: &'a [recipe::Diagnostic],
    /// The services this binary can run (when some cannot).
    #[serde(skip_serializing_if = "Option::is_none")]
    runnable: Option<&'a [String]>,
}

pub fn validate(a: &ValidateArgs) -> anyhow::Result<i32> {
    let lenient = recipe::load_lenient(&a.recipe);
    if let (Ok(l), Some(name)) = (&lenient, &a.service) {
        if l.plan.service(name).is_none() {
            let names: Vec<&str> = l.plan.services.iter().map(|s| s.name.as_str()).collect();
            return Err(Failure::invalid_input(format!(
                "no service `{name}` in {} (services: {})",
                a.recipe.display(),
                names.join(", ")
            ))
            .into());
        }
    }
    let selected = lenient.and_then(|l| {
        l.select(a.service.as_deref())
            .map_err(|e| LoadError::CannotRun(Box::new(e)))
    });
    match selected {
        Ok(l) => {
            // Other services this binary cannot run (not selected): say so, once each.
            for (name, d) in l.blocked() {
                eprintln!(
                    "note: service `{name}` is not validated for running: {}",
                    d.message
                );
            }
            if a.json {
                let j = ValidateJson {
                    file: a.recipe.display().to_string(),
                    valid: true,
                    services: l.plan.services.len(),
                    diagnostics: &l.warnings,
                    runnable: None,
                };
                crate::outln!("{}", serde_json::to_string_pretty(&j)?)?;
            } else {
                eprint!("{}", l.render_warnings());
                crate::outln!(
                    "{}: valid ({} service{}, {} warning{})",
                    a.recipe.display(),
                    l.plan.services.len(),
                    if l.plan.services.len() == 1 { "" } else { "s" },
                    l.warnings.len(),
                    if l.warnings.len() == 1 { "" } else { "s" }
                )?;
            }
            Ok(exit::OK)
        }
        Err(LoadError::Invalid(e)) if a.json => {
            let j = ValidateJson {
                file: a.recipe.display().to_string(),
                valid: false,
                services: 0,
                diagnostics: &e.diagnostics,
                runnable: None,
            };
            crate::outln!("{}", serde_json::to_string_pretty(&j)?)?;
            Ok(exit::INVALID_INPUT)
        }
        Err(LoadError::CannotRun(e)) if a.json => {
            let j = ValidateJson {
                file: a.recipe.display().to_string(),
                valid: false,
                services: 0,
                diagnostics: &e.error.diagnostics,
                runnable: Some(&e.runnable),
            };
            crate::outln!("{}", serde_json::to_string_pretty(&j)?)?;
            Ok(exit::INVALID_INPUT)
        }
        Err(e) => Err(super::load_failure(e).into()),
    }
}

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
struct ExplainService {
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

fn explain_rows(l: &recipe::Loaded) -> Vec<ExplainService> {
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

pub fn explain(a: &ExplainArgs) -> anyhow::Result<i32> {
    // `validate` shows the warnings in full; `explain` names how many, once, so a user who
    // runs both does not read every warning twice.
    // Every service is shown; one this binary cannot run is marked (not refused).
    let l = recipe::load_lenient(&a.recipe)?;
    if !l.warnings.is_empty() {
        eprintln!(
            "{} warning{} (details: factorybench validate {})",
            l.warnings.len(),
            if l.warnings.len() == 1 { "" } else { "s" },
            crate::render::shell_quote(&a.recipe.display().to_string())
        );
    }
    let plan = &l.plan;
    let rows = explain_rows(&l);
    let total: f64 = rows.iter().map(|r| r.node_hours).sum();
    if a.json {
        let j = serde_json::json!({
            "benchmark": plan.benchmark,
            "metrics_db": plan.global.metrics_db,
            "services": rows,
            "total_node_hours": total,
        });
        crate::outln!("{}", serde_json::to_string_pretty(&j)?)?;
        return Ok(exit::OK);
    }
    crate::outln!("{}", plan.benchmark.name)?;
    if !plan.benchmark.description.is_empty() {
        crate::outln!("  {}", plan.benchmark.description)?;
    }
    crate::outln!(
        "  campaign file: {}   reports: {}   logs: {}",
        plan.global.metrics_db.display(),
        plan.global.reports_dir.display(),
        plan.global.logs_dir.display()
    )?;
    crate::outln!()?;
    crate::outln!(
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
    )?;
    for r in &rows {
        let rate = r
            .target_rate_per_s
            .map(|v| format!("{v:.1}"))
            .unwrap_or_else(|| "unthrottled".into());
        crate::outln!(
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
        )?;
        if let Some(why) = &r.cannot_run {
            crate::outln!("{:<24} CANNOT RUN with this binary: {why}", "")?;
        }
    }
    let runnable = l.runnable();
    if runnable.len() < rows.len() {
        crate::outln!()?;
        crate::outln!(
            "{} of {} services cannot run with this binary; the others run with --service NAME ({})",
            rows.len() - runnable.len(),
            rows.len(),
            runnable.join(", ")
        )?;
    }
    crate::outln!()?;
    // Placement: the service takes the job's first node; `client_nodes: N`, or the seed's
    // `nodes: N` without it, puts the clients on the other nodes.
    for r in rows.iter().filter(|r| r.client_nodes > 0) {
        crate::outln!(
            "{}: service on 1 node, clients on the other {} (nodes: {})",
            r.name,
            r.client_nodes,
            r.nodes
        )?;
    }
    crate::outln!(
        "{} service{}; at most {total:.2} node-hours if every job runs to its time limit.",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    )?;
    Ok(exit::OK)
}
